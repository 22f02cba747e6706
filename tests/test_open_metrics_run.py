"""A generation task scored with the open-answer metrics, end to end: a task YAML over local
JSONL data, the openai backend talking to ``gapmeter serve``'s app (a model that answers each
question with a fixed reply), results.json with every metric and its standard error. Plus the
load-time refusals (unknown metric, metric not computed for the output type, bad option), each
one line naming the YAML file."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import sacrebleu
from support.api_server import serving

from gapmeter.engine.evaluate import evaluate
from gapmeter.errors import ConfigError
from gapmeter.serve.models import EchoServed
from gapmeter.spec import RunSpec
from gapmeter.tasks.registry import TaskRegistry

# question -> (the model's reply, reference(s)); expected per-doc scores below, worked by hand.
DOCS: list[tuple[str, str, Any]] = [
    ("capital of France", "Paris.", "Paris"),
    ("six times seven", "The answer is 42", "42"),
    ("json please", '{"answer": 42}', '{"answer": 42}'),
    ("a colour", "red", ["blue", "Red"]),
    ("pi to five places", "about 3.1416", "3.14159"),
    ("a short list", "[1, 2]", "[1, 2, 3]"),
]
EXPECTED: dict[str, list[float]] = {
    "exact_match": [0, 0, 1, 1, 0, 0],  # ignore_case: "red" matches "Red"; "Paris." keeps its dot
    "exact_match_norm": [1, 0, 1, 1, 0, 0],
    "token_f1": [1, 0.5, 1, 1, 0, 0.8],  # "answer is 42" vs "42": P 1/3, R 1; "1 2" vs "1 2 3"
    "rougeL": [1, 0.4, 1, 1, 0.4, 0.8],  # LCS over rouge tokens: [the answer is 42] vs [42], ...
    "regex_match": [1, 1, 0, 0, 0, 0],  # starts with a capital letter
    "numeric_match": [0, 1, 1, 0, 1, 0],  # abs_tol 0.001; the last number of the reply
    "json_valid": [0, 0, 1, 0, 0, 1],
    "json_schema_valid": [0, 0, 1, 0, 0, 0],  # an object with an integer "answer"
    "mentions_reference": [1, 1, 1, 1, 0, 0],  # the user's function
}

TASK_YAML = """task: open_answers
source:
  local: {format: hf_jsonl, files: {test: answers.jsonl}}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{question}}\\nA:"
doc_to_target: answer
generation_kwargs: {until: ["\\n"], max_gen_toks: 16}
metric_list:
  - {metric: exact_match, ignore_case: true}
  - {metric: exact_match_norm}
  - {metric: token_f1}
  - {metric: rougeL}
  - {metric: bleu}
  - {metric: chrf}
  - {metric: regex_match, pattern: "^[A-Z]"}
  - {metric: numeric_match, abs_tol: 0.001}
  - {metric: json_valid}
  - {metric: json_schema_valid, schema_file: schemas/answer.json}
  - {metric: "my_metrics.py:mentions_reference", case_sensitive: false}
"""

USER_METRICS = '''
def mentions_reference(prediction, references, doc, *, case_sensitive=True):
    """1.0 when the answer contains one of the references (the doc is there for other fields)."""
    assert "question" in doc
    fold = (lambda s: s) if case_sensitive else str.lower
    return float(any(fold(r) in fold(prediction) for r in references))
'''

SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


class AnsweringServed(EchoServed):
    """The echo stand-in, but each question gets its own reply (found in the prompt)."""

    def __init__(self, replies: dict[str, str]) -> None:
        super().__init__("answers")
        self.replies = replies

    def decoder(self, ids: list[int], **options: Any) -> Any:
        prompt = self.decode(ids)
        reply = next(r for q, r in self.replies.items() if f"Q: {q}\n" in prompt)
        return EchoServed(reply=reply).decoder(ids, **options)


def write_task(root: Path, yaml_text: str = TASK_YAML) -> Path:
    (root / "schemas").mkdir(exist_ok=True)
    (root / "schemas" / "answer.json").write_text(json.dumps(SCHEMA))
    (root / "my_metrics.py").write_text(USER_METRICS)
    with (root / "answers.jsonl").open("w") as f:
        for question, _, answer in DOCS:
            f.write(json.dumps({"question": question, "answer": answer}) + "\n")
    (root / "task.yaml").write_text(yaml_text)
    return root / "task.yaml"


def test_open_answer_metrics_run_end_to_end_with_stderrs(tmp_path: Path) -> None:
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    write_task(task_dir)
    out = tmp_path / "out"
    with serving(AnsweringServed({q: r for q, r, _ in DOCS})) as server:
        spec = RunSpec(model="openai", model_args=f"base_url={server.url},model=answers", tasks=("open_answers",),
                       output_path=out, log_samples=True, data_dir=task_dir, include_path=(task_dir,),
                       bootstrap_iters=200)
        outcome = evaluate(spec)
    results = json.loads((out / "results.json").read_text())["results"]["open_answers"]
    per_doc = {k: [s.metrics["none"][k] for s in outcome.tasks["open_answers"].scores]
               for k in EXPECTED}
    for name, expected in EXPECTED.items():
        assert per_doc[name] == pytest.approx(expected), name
        assert results[f"{name},none"] == pytest.approx(statistics.fmean(expected)), name
        assert results[f"{name}_stderr,none"] == pytest.approx(statistics.stdev(expected) / math.sqrt(len(expected))), name
    # Corpus BLEU/chrF (lm-eval's aggregations): one reference stream (the fewest references any
    # doc has, as lm-eval truncates), bootstrapped stderr.
    preds = [r for _, r, _ in DOCS]
    first_refs = [a[0] if isinstance(a, list) else a for _, _, a in DOCS]
    assert results["bleu,none"] == pytest.approx(sacrebleu.corpus_bleu(preds, [first_refs]).score)
    assert results["chrf,none"] == pytest.approx(sacrebleu.corpus_chrf(preds, [first_refs]).score)
    for name in ("bleu", "chrf"):
        se = results[f"{name}_stderr,none"]
        assert isinstance(se, float) and se > 0, name
    assert set(json.loads((out / "results.json").read_text())["higher_is_better"]["open_answers"]) >= set(EXPECTED)


@pytest.mark.parametrize(
    ("metric_line", "message"),
    [
        ("{metric: rouge_l}", "task.yaml: open_answers: unknown metric 'rouge_l'; known: "),
        ("{metric: acc_norm}", "task.yaml: open_answers: metric 'acc_norm' is not computed for output_type "
                               "generate_until (supported: exact_match, bleu"),
        ("{metric: regex_match}", "task.yaml: open_answers: metric 'regex_match': option 'pattern' is required"),
        ("{metric: regex_match, pattern: '(a'}", "metric 'regex_match': option 'pattern': bad regular expression"),
        ("{metric: json_schema_valid, schema_file: nope.json}", "metric 'json_schema_valid': option 'schema_file': "
                                                                "cannot read "),
        ("{metric: token_f1, aggregation: average}", "metric 'token_f1': unknown aggregation 'average'"),
        ("{metric: token_f1, ignore_case: true}", "metric 'token_f1': unknown option 'ignore_case'"),
        ("{metric: 'my_metrics.py:no_such_function'}", "metric 'my_metrics.py:no_such_function': hook "
                                                       "'my_metrics.py:no_such_function': no function"),
        ("{metric: 'missing.py:score'}", "metric 'missing.py:score': hook file"),
        ("[{metric: token_f1}, {metric: token_f1}]", "metric 'token_f1' is listed twice"),
    ],
)
def test_bad_metrics_are_refused_when_the_task_loads(tmp_path: Path, metric_line: str, message: str) -> None:
    listing = metric_line if metric_line.startswith("[") else f"[{metric_line}]"
    yaml_text = TASK_YAML[: TASK_YAML.index("metric_list:")] + f"metric_list: {listing}\n"
    path = write_task(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        TaskRegistry.load([tmp_path])
    line = str(err.value)
    assert "\n" not in line and line.startswith(str(path)), line
    assert message in line, line


def test_a_function_metric_is_for_generations_only(tmp_path: Path) -> None:
    (tmp_path / "my_metrics.py").write_text(USER_METRICS)
    (tmp_path / "mc.yaml").write_text(
        "task: mc\nsource: {local: {format: hf_jsonl, files: {test: x.jsonl}}}\ntest_split: test\n"
        "doc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a, b]\n"
        "metric_list: [{metric: 'my_metrics.py:mentions_reference'}]\n"
    )
    with pytest.raises(ConfigError, match=r"mc\.yaml: mc: metric 'my_metrics.py:mentions_reference': "
                                          r"Python-function metrics score generations only"):
        TaskRegistry.load([tmp_path])
