"""A task's metrics are checked against the metric registry when the task is registered: an
unknown metric, or one not computed for the task's output type, is refused naming the file —
before any data is read or a model is loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gapmeter.errors import ConfigError
from gapmeter.scoring.metrics import METRICS
from gapmeter.tasks.registry import TaskRegistry

FIXTURES = Path(__file__).parent / "fixtures" / "user_tasks"

TASK = """task: my_task
source:
  generator:
    function: sums.py:make
    splits: {{test: {{n: 12, seed: 1}}}}
test_split: test
output_type: {output_type}
doc_to_text: "Q: {{{{question}}}}=?\\nA:"
doc_to_target: answer
{extra}metric_list: [{{metric: {metric}}}]
"""


def _registry(tmp_path: Path, output_type: str, metric: str, extra: str = "") -> TaskRegistry:
    shutil.copy(FIXTURES / "sums.py", tmp_path / "sums.py")
    (tmp_path / "task.yaml").write_text(TASK.format(output_type=output_type, metric=metric, extra=extra))
    return TaskRegistry.load([tmp_path])


def test_an_unknown_metric_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"task\.yaml: my_task: unknown metric 'blue'"):
        _registry(tmp_path, "generate_until", "blue")


def test_a_metric_not_computed_for_the_output_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"task\.yaml: my_task: metric 'acc_norm' is not computed for output_type generate_until"):
        _registry(tmp_path, "generate_until", "acc_norm")
    with pytest.raises(ConfigError, match="metric 'perplexity' is not computed for output_type multiple_choice"):
        _registry(tmp_path, "multiple_choice", "perplexity", extra="doc_to_choice: choices\n")


def test_supported_metrics_and_hook_metrics_are_accepted(tmp_path: Path) -> None:
    assert "my_task" in _registry(tmp_path, "generate_until", "exact_match").tasks
    # A process_results hook computes its own metrics, whatever their names.
    hooked = _registry(tmp_path, "generate_until", "bleu", extra="process_results: sums.py:make\n")
    assert "my_task" in hooked.tasks


def test_every_registered_metric_names_where_it_is_computed() -> None:
    output_types = {"multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until"}
    for name, spec in METRICS.items():
        assert spec.name == name
        assert spec.output_types <= output_types, name


def test_every_builtin_task_passes_the_check() -> None:
    assert len(TaskRegistry.load([]).tasks) > 300


def test_acc_mutual_info_asks_for_unconditional_requests_and_scores_in_lm_eval_order(tmp_path: Path) -> None:
    """A metric declaring ``needs_unconditional`` adds lm-eval's ("", choice) requests after the
    conditional ones; per-doc metrics come in lm-eval's process_results order whatever the YAML's."""
    from gapmeter.tasks.scoring import score_task
    from gapmeter.tasks.task import Task

    listing = "[{metric: acc_mutual_info}, {metric: exact_match}, {metric: acc_norm}, {metric: f1}, {metric: acc}"
    _registry(tmp_path, "multiple_choice", "acc", extra="doc_to_choice: choices\n")
    yaml_text = (tmp_path / "task.yaml").read_text().replace("metric_list: [{metric: acc}]", f"metric_list: {listing}]")
    (tmp_path / "task.yaml").write_text(yaml_text)
    entry = TaskRegistry.load([tmp_path]).tasks["my_task"]
    task = Task(entry.config, yaml_dir=tmp_path)
    plans = task.plan(limit=3)
    for plan in plans:
        choices = task.doc_to_choice(plan.doc)
        assert len(plan.requests) == 2 * len(choices)
        assert [(r.context, r.continuation) for r in plan.requests[len(choices):]] == [("", f" {c}") for c in choices]
    # Conditional lls favour choice 0, unconditional ones penalise it: mutual info picks choice 1.
    responses = [[(-1.0, True), (-2.0, False), (-3.0, False), (-4.0, False),
                  (-0.1, False), (-5.0, False), (-5.0, False), (-5.0, False)] for _ in plans]
    scores = score_task(task, plans, responses)
    for plan, doc_score in zip(plans, scores, strict=True):
        got = doc_score.metrics["none"]
        assert list(got) == ["acc", "f1", "acc_norm", "exact_match", "acc_mutual_info"]
        gold = plan.doc["answer"]
        assert got["acc"] == float(gold == 0) and got["acc_mutual_info"] == float(gold == 1)
        assert got["f1"] == (gold, 0)


def test_a_metric_declares_its_range_where_it_is_fixed() -> None:
    from gapmeter.scoring.registry import MetricRegistry

    assert METRICS["judge_score"].value_range == (1.0, 10.0)
    assert METRICS["judge_pass"].value_range == (0.0, 1.0)
    assert METRICS["exact_match"].value_range is None  # not declared: profile takes it only inside 0-1
    reg = MetricRegistry()
    with pytest.raises(ValueError, match="value_range"):
        reg.hook_only("bad", aggregation="mean", higher_is_better=True, value_range=(5.0, 1.0))
    reg.hook_only("rating", aggregation="mean", higher_is_better=True, value_range=(1.0, 5.0))
    with pytest.raises(ValueError, match="different defaults"):  # one metric, one range
        reg.hook_only("rating", aggregation="mean", higher_is_better=True, value_range=(0.0, 5.0))
