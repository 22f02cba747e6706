"""A task's metrics, resolved against the metric registry when the task loads.

Each ``metric_list`` entry becomes a ``TaskMetric``: the registry's spec (or a user function's,
``metric: my_metrics.py:score`` resolved like the other hooks, relative to the YAML), its options
checked and prepared, its aggregation and direction (the YAML's, else the metric's defaults).
An unknown metric, one not computed for the task's output type, a bad option or an unknown
aggregation is a ConfigError naming the file and the metric, before any data is read or a model
loaded. Tasks with a ``process_results`` hook compute their own metrics, whatever their names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError
from gapmeter.scoring.aggregations import AGGREGATIONS
from gapmeter.scoring.metrics import METRICS, MetricSpec, user_metric
from gapmeter.tasks.hooks import resolve_hook
from gapmeter.tasks.schema import MetricConfig, TaskConfig


@dataclass(frozen=True)
class TaskMetric:
    """One metric of one task, ready to score: ``spec.compute(output_type, doc_input, options)``."""

    name: str  # the key in per-doc scores and results
    spec: MetricSpec
    options: dict[str, Any]
    aggregation: str
    higher_is_better: bool


def is_user_metric(metric: str) -> bool:
    """``file.py:function`` or ``package.module:function``: a Python function, not a registry name."""
    return ":" in metric


def resolve_task_metrics(cfg: TaskConfig, yaml_dir: Path | None, where: str) -> list[TaskMetric]:
    """The task's metrics in scoring order; ``where`` prefixes errors (``path: task``).

    Loglikelihood output types list their metrics in the registry's order (lm-eval's per-document
    order); generations in ``metric_list`` order, as lm-eval does.
    """
    if cfg.process_results:
        return []
    resolved = [_resolve(m, cfg.output_type, yaml_dir, where) for m in cfg.metric_list]
    names = [m.name for m in resolved]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"{where}: metric {duplicate!r} is listed twice")
    if cfg.output_type != "generate_until":
        order = {name: i for i, name in enumerate(METRICS)}
        resolved.sort(key=lambda m: order[m.name])
    return resolved


def _resolve(m: MetricConfig, output_type: str, yaml_dir: Path | None, where: str) -> TaskMetric:
    spec = _spec(m.metric, output_type, yaml_dir, where)
    aggregation = m.aggregation or spec.aggregation
    if aggregation not in AGGREGATIONS:
        raise ConfigError(
            f"{where}: metric {spec.name!r}: unknown aggregation {aggregation!r}; known: {', '.join(AGGREGATIONS)}"
        )
    try:
        options = spec.bind(m.kwargs, yaml_dir)
    except ValueError as err:
        raise ConfigError(f"{where}: metric {spec.name!r}: {err}") from None
    higher = spec.higher_is_better if m.higher_is_better is None else m.higher_is_better
    return TaskMetric(spec.name, spec, options, aggregation, higher)


def _spec(metric: str, output_type: str, yaml_dir: Path | None, where: str) -> MetricSpec:
    if is_user_metric(metric):
        if output_type != "generate_until":
            raise ConfigError(
                f"{where}: metric {metric!r}: Python-function metrics score generations only "
                f"(output_type generate_until); use a process_results hook for {output_type}"
            )
        return user_metric(resolve_hook(metric, yaml_dir=yaml_dir, where=f"{where}: metric {metric!r}"))
    spec = METRICS.get(metric)
    if spec is None:
        raise ConfigError(f"{where}: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if output_type not in spec.output_types:
        raise ConfigError(
            f"{where}: metric {metric!r} is not computed for output_type {output_type} "
            f"(supported: {', '.join(METRICS.supporting(output_type))}; others need a process_results hook)"
        )
    return spec
