"""Parity of gapmeter.scoring.metrics with lm-eval 0.4.13 (lm_eval imported by tests only)."""

from __future__ import annotations

import math
import random
import types
import warnings
from typing import Any

import numpy as np
import pytest
from lm_eval.api import metrics as lm_metrics
from lm_eval.api.registry import AGGREGATION_REGISTRY, get_metric_aggregation, is_higher_better
from lm_eval.api.task import ConfigurableTask, Task
from lm_eval.tasks.truthfulqa.utils import process_results_mc2

from gapmeter.scoring import metrics as gm

MC_METRICS = ["acc", "acc_norm", "acc_bytes", "exact_match", "f1", "mcc", "acc_mutual_info"]
GSM8K_IGNORE = [",", "\\$", "(?s).*#### ", "\\.$"]
ALPHABET = ["a", "bb", "é", "日本", " x", "ß", "", "long answer", "🙂", "z."]


def lm_task(output_type: str, metrics: list[str], multiple_target: bool = False) -> Any:
    """A ConfigurableTask shell whose process_results we can call without a dataset."""
    task = object.__new__(ConfigurableTask)
    task._config = types.SimpleNamespace(process_results=None, task="stub")
    task.OUTPUT_TYPE = output_type
    task._metric_fn_list = dict.fromkeys(metrics)
    task.multiple_input = 0
    task.multiple_target = int(multiple_target)
    task.doc_to_choice = lambda doc: doc["choices"]
    task.doc_to_target = lambda doc: doc["gold"]
    return task


def lm_mc(doc: dict, lls: list[float], greedy: list[bool], uncond: list[float] | None) -> dict:
    metrics = MC_METRICS if uncond is not None else MC_METRICS[:-1]
    task = lm_task("multiple_choice", metrics, isinstance(doc["gold"], list))
    all_lls = lls + (uncond or [])
    all_greedy = greedy + [False] * len(uncond or [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return task.process_results(doc, list(zip(all_lls, all_greedy, strict=True)))


def random_gold(rng: random.Random, choices: list[str]) -> Any:
    n = len(choices)
    kind = rng.random()
    if kind < 0.5:
        return rng.randrange(n)
    if kind < 0.6:
        return n + rng.randrange(3)  # out of range -> -100
    if kind < 0.7:
        return rng.choice(choices + ["not a choice"])  # string gold
    if kind < 0.75:
        return -1  # negative: never a hit, but exact_match reads is_greedy[-1]
    return [rng.randrange(n + 1) for _ in range(rng.randrange(1, 3))]


def random_lls(rng: random.Random, n: int) -> list[float]:
    """Coarse values so that ties (argmax lowest index) are frequent."""
    return [-float(rng.randrange(0, 6)) * rng.choice([1.0, 0.5]) for _ in range(n)]


def test_mc_scores_match_lm_eval_on_random_docs() -> None:
    rng = random.Random(1234)
    for _ in range(600):
        n = rng.randrange(1, 6)
        choices = [rng.choice(ALPHABET) for _ in range(n)]
        gold = random_gold(rng, choices)
        lls, greedy = random_lls(rng, n), [rng.random() < 0.3 for _ in range(n)]
        doc = {"choices": choices, "gold": gold}
        ref = lm_mc(doc, lls, greedy, None)
        ours = gm.mc_scores(lls, greedy, choices, gold)
        for key in ("acc", "acc_norm", "acc_bytes", "exact_match"):
            assert ours[key] == ref[key], (key, doc, lls, greedy)
            assert type(ours[key]) is type(ref[key])
        gold_r, pred = gm.mc_pair(lls, choices, gold)
        assert (gold_r, pred) == ref["f1"] == ref["mcc"]


def test_acc_mutual_info_matches_lm_eval() -> None:
    rng = random.Random(99)
    for _ in range(300):
        n = rng.randrange(1, 6)
        choices = [rng.choice(ALPHABET) for _ in range(n)]
        gold = rng.choice([rng.randrange(n), n + 1, [rng.randrange(n)], rng.choice(choices)])
        lls, uncond = random_lls(rng, n), random_lls(rng, n)
        greedy = [rng.random() < 0.5 for _ in range(n)]
        ref = lm_mc({"choices": choices, "gold": gold}, lls, greedy, uncond)
        ours = gm.mc_scores(lls, greedy, choices, gold, unconditional_lls=uncond)
        for key in ("acc", "acc_norm", "acc_bytes", "exact_match", "acc_mutual_info"):
            assert ours[key] == ref[key]


def test_mc_known_cases() -> None:
    # ties -> lowest index; acc_norm uses characters, acc_bytes UTF-8 bytes
    assert gm.mc_scores([-2.0, -2.0], [False, True], ["a", "b"], 0)["acc"] == 1.0
    s = gm.mc_scores([-3.0, -3.6], [False, True], ["ééé", "eeee"], 1)
    assert (s["acc"], s["acc_norm"], s["acc_bytes"], s["exact_match"]) == (0.0, 1.0, 0.0, 1)
    # out-of-range gold -> -100: nothing can hit, exact_match 0
    assert gm.mc_scores([-1.0], [True], ["a"], 5) == {
        "acc": 0.0,
        "acc_norm": 0.0,
        "acc_bytes": 0.0,
        "exact_match": 0,
    }
    # multiple targets: any hit
    assert (
        gm.mc_scores([-3.0, -1.0, -2.0], [False, False, True], ["a", "b", "c"], [0, 1])["acc"]
        == 1.0
    )
    assert gm.resolve_gold([0, 7], ["a", "b"]) == [0, -100]
    with pytest.raises(ValueError):
        gm.acc_mutual_info([-1.0, -2.0], [-1.0, -1.0], [0, 1])


def test_mc2_matches_truthfulqa_process_results() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 9))
        lls = list(rng.normal(-20, 8, size=n))
        labels = [int(x) for x in rng.integers(0, 2, size=n)]  # unsorted too
        ref = process_results_mc2({"mc2_targets": {"labels": labels}}, [(ll, False) for ll in lls])
        assert gm.mc2(lls, labels) == ref["acc"]
    # all exp(ll) underflow -> NaN, as in lm-eval
    assert math.isnan(gm.mc2([-2000.0, -2000.0], [1, 0]))


STRINGS = [
    "#### 1,234.",
    "1234",
    "The answer is $5.00 and then 7",
    "#### $5",
    "5",
    "Hello.",
    "hello",
    "İ",
    "i̇",
    "a\x00",
    "a",
    "a.\x00",
    "A,B",
    "ab",
    "x#### 12\n#### 13",
    "13",
    "",
    "  7 ",
    "7",
    "3.14",
    "314",
    "ΟΔΟΣ",
    "οδος",
    "(-42)",
    "-42",
    "1,000,000.",
    "1000000",
]


@pytest.mark.parametrize("regexes", [None, [], GSM8K_IGNORE, ["\\s+", "a"]])
@pytest.mark.parametrize(
    "flags", [(False, False, False), (True, False, False), (True, True, False), (False, True, True)]
)
def test_exact_match_matches_hf_evaluate(
    regexes: list[str] | None, flags: tuple[bool, bool, bool]
) -> None:
    case, punct, nums = flags
    for pred in STRINGS:
        for ref in STRINGS:
            expected = lm_metrics.exact_match_hf_evaluate(
                [pred],
                [ref],
                regexes_to_ignore=regexes,
                ignore_case=case,
                ignore_punctuation=punct,
                ignore_numbers=nums,
            )["exact_match"]
            got = gm.exact_match(
                pred,
                ref,
                regexes_to_ignore=regexes,
                ignore_case=case,
                ignore_punctuation=punct,
                ignore_numbers=nums,
            )
            assert got == expected, (pred, ref)


def test_exact_match_gsm8k_examples() -> None:
    opts: dict[str, Any] = {"regexes_to_ignore": GSM8K_IGNORE, "ignore_case": True}
    assert gm.exact_match("1,234.", "Some work\n#### 1234", **opts) == 1.0
    assert gm.exact_match("$5", "#### 5", **opts) == 1.0
    assert gm.exact_match("[invalid]", "#### 5", **opts) == 0.0
    assert gm.exact_match_any("5", ["6", "#### 5"], **opts) == 1.0
    assert gm.exact_match_any("5", [], **opts) == 0.0


def test_rolling_items_and_aggregations() -> None:
    rng = random.Random(3)
    texts = ["", " hello  world ", "a\nb\tc", "日本語 テキスト", "x" * 50]
    items = []
    for text in texts:
        ll = -rng.random() * 100
        assert gm.count_words(text) == Task.count_words(text)
        assert gm.count_bytes(text) == Task.count_bytes(text)
        task = lm_task(
            "loglikelihood_rolling", ["word_perplexity", "byte_perplexity", "bits_per_byte"]
        )
        task.doc_to_target = lambda doc, t=text: t
        ref = task.process_results({}, (ll,))
        ours = gm.rolling_items(ll, text)
        assert dict(ours) == ref
        items.append(ours)
    for key, agg in [
        ("word_perplexity", "weighted_perplexity"),
        ("byte_perplexity", "weighted_perplexity"),
        ("bits_per_byte", "bits_per_byte"),
    ]:
        col = [it[key] for it in items]
        assert gm.aggregate(agg, col) == AGGREGATION_REGISTRY[agg](col)


def _pairs(rng: random.Random, n: int, labels: list[int]) -> list[tuple[int, int]]:
    return [(rng.choice(labels), rng.choice(labels)) for _ in range(n)]


def test_scalar_and_pair_aggregations_match_lm_eval() -> None:
    rng = random.Random(11)
    for _ in range(200):
        n = rng.randrange(1, 40)
        xs = [rng.gauss(0, 3) for _ in range(n)]
        for name in ("mean", "median", "perplexity", "nanmean"):
            assert gm.aggregate(name, xs) == AGGREGATION_REGISTRY[name](xs)
        with_nan = [x if rng.random() < 0.7 else float("nan") for x in xs]
        ref = lm_metrics.nanmean(with_nan)
        got = gm.nanmean(with_nan)
        assert got == ref or (math.isnan(got) and math.isnan(ref))
        binary = _pairs(rng, n, rng.choice([[0, 1], [0], [1], [1, 2]]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert gm.f1_score(binary) == lm_metrics.f1_score(binary)
            multi = _pairs(rng, n, [0, 1, 2, 3, -100][: rng.randrange(1, 6)])
            assert gm.matthews_corrcoef(multi) == lm_metrics.matthews_corrcoef(multi)
            assert gm.matthews_corrcoef(binary) == lm_metrics.matthews_corrcoef(binary)


def test_f1_rejects_what_sklearn_rejects() -> None:
    for bad in ([(0, 1), (2, 1)], [(0, 2), (2, 0)]):
        with pytest.raises(ValueError):
            lm_metrics.f1_score(bad)
        with pytest.raises(ValueError):
            gm.f1_score(bad)


def test_median_is_upper_median() -> None:
    assert gm.median([1.0, 2.0, 3.0, 4.0]) == 3.0


def test_sacrebleu_aggregations_match_lm_eval() -> None:
    items = [
        (["the cat sat on the mat", "a cat sat on a mat"], "the cat sat on a mat"),
        (["hello there general kenobi", "hello there"], "hello there general"),
        (["one two three four", "one two three"], "four three two one"),
    ]
    for name in ("bleu", "chrf", "chrf++", "ter"):
        assert gm.aggregate(name, items) == AGGREGATION_REGISTRY[name](items)
    single = [(r[0], [p]) for r, p in items]  # one ref string each, preds as 1-lists
    assert gm.bleu(single) == lm_metrics.bleu(single)
    assert gm.ter(single) == lm_metrics.ter(single)


def test_registry_defaults_match_lm_eval() -> None:
    """lm-eval's metric names keep lm-eval's aggregation and direction; gapmeter's own
    (open-answer) metrics are means where higher is better."""
    from lm_eval.api.registry import METRIC_REGISTRY

    inverse = {fn: name for name, fn in AGGREGATION_REGISTRY.items()}
    for name, spec in gm.METRICS.items():
        assert spec.aggregation in gm.AGGREGATIONS
        if name in ("mc2", "judge_score", "judge_pass"):  # produced outside per-doc functions (a hook, the judge)
            assert (spec.aggregation, spec.higher_is_better, spec.output_types) == ("mean", True, frozenset())
            continue
        if name not in METRIC_REGISTRY:
            assert (spec.aggregation, spec.higher_is_better) == ("mean", True), name
            assert spec.output_types == {"generate_until"}, name
            continue
        assert inverse[get_metric_aggregation(name)] == spec.aggregation, name
        assert is_higher_better(name) == spec.higher_is_better, name
    # lm-eval's generation metrics are all computed for generations here too.
    for name in ("exact_match", "bleu", "chrf", "chrf++", "ter"):
        assert "generate_until" in gm.METRICS[name].output_types
