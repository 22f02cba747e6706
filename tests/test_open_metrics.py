"""Open-answer (generate_until) metrics through the registry, checked against lm-eval where it
has the metric (exact_match, bleu, chrf, chrf++, ter) and against the libraries or the SQuAD
reference script otherwise."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sacrebleu
from lm_eval.api import metrics as lm_metrics
from lm_eval.api.registry import AGGREGATION_REGISTRY, METRIC_REGISTRY
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks.qasper.metrics import f1_abstractive, normalize_answer
from rouge_score import rouge_scorer

from gapmeter.scoring import metrics as gm
from gapmeter.scoring.registry import GenerationDoc

PAIRS = [
    ("The cat sat on the mat.", "the cat sat on the mat"),
    ("A cat is sitting on a mat", "The cat sat on the mat."),
    ("Paris", "paris, france"),
    ("  an answer  with   spaces ", "answer with spaces"),
    ("42", "The answer is 42."),
    ("", ""),
    ("nothing", ""),
    ("Über die Brücke", "über die brücke!"),
    ("the the the", "the"),
    ("red green blue", "blue green red"),
]


def score(name: str, prediction: str, references: list[str] | str, base_dir: Path | None = None,
          **options: Any) -> Any:
    spec = gm.METRICS[name]
    multiple = isinstance(references, list)
    refs = tuple(references) if isinstance(references, list) else (references,)
    doc = GenerationDoc(prediction, refs, multiple, {})
    return spec.compute("generate_until", doc, spec.bind(options, base_dir))


def lm_generation_items(names: list[str], kwargs: dict[str, Any], docs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """lm-eval's ConfigurableTask.process_results for generate_until, without a dataset."""
    task = object.__new__(ConfigurableTask)
    task._config = types.SimpleNamespace(process_results=None, task="stub", doc_to_choice=None)
    task.OUTPUT_TYPE = "generate_until"
    task._metric_fn_list = {n: METRIC_REGISTRY[n] for n in names}
    task._metric_fn_kwargs = {n: dict(kwargs) if n == "exact_match" else {} for n in names}
    task._aggregation_list, task._higher_is_better = {}, {}
    task.multiple_target = 0
    task.doc_to_target = lambda doc: doc["gold"]
    out = []
    for pred, gold in docs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(task.process_results({"gold": gold}, [pred]))
    return out


@pytest.mark.parametrize("kwargs", [{}, {"ignore_case": True, "ignore_punctuation": True},
                                    {"regexes_to_ignore": [r"\s+", "the"], "ignore_case": True}])
def test_lm_eval_generation_metrics_give_lm_eval_items_and_scores(kwargs: dict[str, Any]) -> None:
    names = ["exact_match", "bleu", "chrf", "chrf++", "ter"]
    refs = lm_generation_items(names, kwargs, [(p, r) for p, r in PAIRS])
    ours = [{n: score(n, p, r, **(kwargs if n == "exact_match" else {})) for n in names} for p, r in PAIRS]
    for theirs, mine in zip(refs, ours, strict=True):
        assert mine["exact_match"] == theirs["exact_match"]
        for n in names[1:]:
            assert tuple(mine[n]) == tuple(theirs[n])  # lm-eval's [gold, prediction] item
    for n in names:
        agg = gm.METRICS[n].aggregation
        mine_items = [m[n] for m in ours]
        theirs_items = [t[n] for t in refs]
        assert gm.aggregate(agg, mine_items) == AGGREGATION_REGISTRY[agg](theirs_items), n


def test_several_references_take_the_best_one() -> None:
    assert score("exact_match", "Red", ["blue", "Red"]) == 1.0  # lm-eval: any reference
    assert score("exact_match", "red", ["blue", "Red"]) == 0.0
    assert score("exact_match", "red", ["blue", "Red"], ignore_case=True) == 1.0
    assert score("token_f1", "the red car", ["a blue car", "red car"]) == 1.0
    assert score("token_f1", "red", ["blue", "green"]) == 0.0
    assert score("rougeL", "a red car", ["a blue bike", "the red car"]) == pytest.approx(2 / 3)
    assert score("numeric_match", "It is 12", ["11", "12"]) == 1.0
    # BLEU's item carries all references; the corpus aggregation uses them as reference streams.
    item = score("bleu", "the cat sat", ["a cat sat", "the cat sat"])
    assert item == (["a cat sat", "the cat sat"], "the cat sat")
    assert gm.bleu([item]) == sacrebleu.corpus_bleu(["the cat sat"], [["a cat sat"], ["the cat sat"]]).score


def test_normalised_exact_match_and_token_f1_follow_the_squad_script() -> None:
    for pred, ref in PAIRS:
        assert score("exact_match_norm", pred, ref) == float(normalize_answer(pred) == normalize_answer(ref))
        if normalize_answer(pred) and normalize_answer(ref):
            assert score("token_f1", pred, ref) == f1_abstractive([pred], [ref]), (pred, ref)
    # SQuAD v2's rule for empty answers: both empty agree, one empty does not.
    assert score("token_f1", "", "") == 1.0
    assert score("token_f1", "the", "an") == 1.0  # both normalise to nothing
    assert score("token_f1", "nothing", "") == 0.0
    assert score("token_f1", "red red blue", "red blue green") == pytest.approx(2 / 3)


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_l_is_rouge_scores_f_measure(use_stemmer: bool) -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    for pred, ref in PAIRS:
        expected = scorer.score(ref, pred)["rougeL"].fmeasure
        assert score("rougeL", pred, ref, use_stemmer=use_stemmer) == expected
    # LCS of 6 tokens, 7 predicted, 6 in the reference: F = 2PR/(P+R) = 12/13.
    assert score("rougeL", "the cat was found under the bed", "the cat was under the bed") == pytest.approx(12 / 13)
    assert score("rougeL", "cats running", "cat runs", use_stemmer=True) == 1.0


def test_regex_match_uses_the_pattern_option() -> None:
    assert score("regex_match", "Answer: B", "ignored", pattern=r"Answer: [A-D]\b") == 1.0
    assert score("regex_match", "answer: b", "ignored", pattern=r"Answer: [A-D]\b") == 0.0
    assert score("regex_match", "answer: b", "ignored", pattern=r"Answer: [A-D]\b", ignore_case=True) == 1.0
    assert score("regex_match", "Answer: B, surely", "x", pattern=r"Answer: [A-D]", full=True) == 0.0
    assert score("regex_match", " Answer: B \n", "x", pattern=r"Answer: [A-D]", full=True) == 1.0
    with pytest.raises(ValueError, match="bad regular expression"):
        score("regex_match", "x", "x", pattern="(unclosed")
    with pytest.raises(ValueError, match="option 'pattern' is required"):
        score("regex_match", "x", "x")


def test_numeric_match_with_tolerances() -> None:
    assert score("numeric_match", "The total is 1,234.50 dollars", "1234.5") == 1.0
    assert score("numeric_match", "about 3.1416", "3.14159") == 0.0
    assert score("numeric_match", "about 3.1416", "3.14159", abs_tol=1e-3) == 1.0
    assert score("numeric_match", "101", "100", rel_tol=0.02) == 1.0
    assert score("numeric_match", "103", "100", rel_tol=0.02) == 0.0
    assert score("numeric_match", "first 7 then 9", "7") == 0.0  # the last number by default
    assert score("numeric_match", "first 7 then 9", "7", pick="first") == 1.0
    assert score("numeric_match", "no number", "7") == 0.0
    assert score("numeric_match", "7", "seven") == 0.0
    assert score("numeric_match", "-2e-3", "-0.002") == 1.0
    with pytest.raises(ValueError, match="'abs_tol' must be a number >= 0"):
        score("numeric_match", "1", "1", abs_tol=-1)
    with pytest.raises(ValueError, match="'pick' must be first, last or whole"):
        score("numeric_match", "1", "1", pick="middle")


SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
OUTPUTS = ['{"answer": 42}', '{"answer": "42"}', '{"answer": 4, "why": "x"}', '{"answer": 1, "x": 2}',
           "[1, 2]", "not json", '```json\n{"answer": 3}\n```', "", "null", '{"answer": 42']


def test_json_validity_and_schema_validity_against_jsonschema(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "answer.json").write_text(json.dumps(SCHEMA))
    for out in OUTPUTS:
        text = out.removeprefix("```json\n").removesuffix("\n```")
        try:
            value, parsed = json.loads(text), True
        except ValueError:
            value, parsed = None, False
        assert score("json_valid", out, "") == float(parsed), out
        valid = parsed and not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(value))
        assert score("json_schema_valid", out, "", schema=SCHEMA) == float(valid), out
        assert score("json_schema_valid", out, "", base_dir=tmp_path, schema_file="schemas/answer.json") == float(valid)
    assert score("json_valid", '```json\n{"a": 1}\n```', "", strip_fences=False) == 0.0
    with pytest.raises(ValueError, match="invalid JSON schema"):
        score("json_schema_valid", "{}", "", schema={"type": "no-such-type"})
    with pytest.raises(ValueError, match="exactly one of"):
        score("json_schema_valid", "{}", "")
    with pytest.raises(ValueError, match="cannot read"):
        score("json_schema_valid", "{}", "", base_dir=tmp_path, schema_file="missing.json")


def test_unknown_options_are_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option 'ignore_cases' \(accepted: ignore_case, ignore_numbers"):
        score("exact_match", "a", "a", ignore_cases=True)
    with pytest.raises(ValueError, match="unknown option 'x'"):
        score("token_f1", "a", "a", x=1)


def test_lm_eval_exact_match_single_call_matches() -> None:
    for pred, ref in PAIRS:
        expected = lm_metrics.exact_match_hf_evaluate([pred], [ref], ignore_case=True)["exact_match"]
        assert score("exact_match", pred, ref, ignore_case=True) == expected
