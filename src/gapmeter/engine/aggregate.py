"""Per-task and per-group aggregates with standard errors (lm-eval's formulas) and extras."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gapmeter.outcomes import MetricResult, TaskPlan
from gapmeter.scoring import metrics as M
from gapmeter.scoring import stats
from gapmeter.tasks.task import DocPlan, DocScore, Task
from gapmeter.tasks.templates import resolve_text


def _aggregation(task: Task, metric: str) -> tuple[str, bool]:
    """The metric's aggregation and direction: the task's resolved metric (YAML over registry
    defaults), else, for metrics a process_results hook produced, the YAML entry or the registry's."""
    for tm in task.metrics:
        if tm.name == metric:
            return tm.aggregation, tm.higher_is_better
    spec = M.METRICS.get(metric)
    for m in task.config.metric_list:
        if m.metric == metric:
            agg = m.aggregation or (spec.aggregation if spec else "mean")
            hib = m.higher_is_better if m.higher_is_better is not None else (spec.higher_is_better if spec else True)
            return agg, hib
    return (spec.aggregation, spec.higher_is_better) if spec else ("mean", True)


#: Replicates for the percentile interval of non-mean metrics (each recomputes the statistic).
PERCENTILE_CI_ITERS = 1000


def _percentile_ci(agg: str, items: Sequence[Any]) -> tuple[float, float] | None:
    from gapmeter.compare.bootstrap import bootstrap_ci

    lo, hi, _ = bootstrap_ci(M.AGGREGATIONS[agg], list(items), iters=PERCENTILE_CI_ITERS, seed=1234)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def cluster_ids(task: Task, plans: Sequence[DocPlan]) -> list[Any] | None:
    spec = task.config.cluster_by
    if not spec:
        return None
    return [resolve_text(spec, p.doc, where=f"task {task.name}: cluster_by") for p in plans]


def aggregate_task(
    task: Task, plans: Sequence[DocPlan], scores: Sequence[DocScore], bootstrap_iters: int
) -> list[MetricResult]:
    results: list[MetricResult] = []
    if not scores:
        return results
    clusters = cluster_ids(task, plans)
    for filter_name in scores[0].metrics:
        for metric in scores[0].metrics[filter_name]:
            items = [s.metrics[filter_name][metric] for s in scores]
            agg, hib = _aggregation(task, metric)
            value = float(M.aggregate(agg, items))
            se = stats.task_stderr(metric, agg, items, bootstrap_iters)
            res = MetricResult(task.name, metric, filter_name, value, se, len(items), higher_is_better=hib)
            if agg != "mean" and agg in stats.BOOTSTRAPPABLE and len(items) > 1 and bootstrap_iters > 0:
                res.bootstrap_ci = _percentile_ci(agg, items)
            if clusters is not None and agg == "mean" and len(items) > 1:
                n_clusters = len(set(map(str, clusters)))
                if 1 < n_clusters < len(items):
                    res.clustered_stderr = stats.clustered_stderr([float(x) for x in items], [str(c) for c in clusters])
                    res.n_clusters = n_clusters
            results.append(res)
    return results


def aggregate_groups(
    plan: TaskPlan,
    task_results: dict[str, list[MetricResult]],
    doc_values: dict[str, dict[tuple[str, str], list[float]]],
) -> list[MetricResult]:
    """Groups from their leaf tasks (lm-eval's Group.aggregate), plus a clustered SE by subtask."""
    out: list[MetricResult] = []
    for name, node in plan.groups.items():
        leaves = plan.leaves_under(name)
        for agg in node.aggregates:
            for filter_name in agg.filter_list:
                rows = []
                for leaf in leaves:
                    match = [r for r in task_results.get(leaf, []) if r.metric == agg.metric and r.filter == filter_name]
                    if match:
                        rows.append(match[0])
                if not rows:
                    continue
                value, se = stats.aggregate_group(
                    [r.value for r in rows], [r.stderr for r in rows], [r.n for r in rows], agg.weight_by_size
                )
                res = MetricResult(name, agg.metric, filter_name, value, se, sum(r.n for r in rows), is_group=True)
                if agg.weight_by_size and len(rows) > 1:
                    values: list[float] = []
                    clusters: list[str] = []
                    for r in rows:
                        vals = doc_values.get(r.task, {}).get((agg.metric, filter_name), [])
                        values.extend(vals)
                        clusters.extend([r.task] * len(vals))
                    if len(values) > 1:
                        res.clustered_stderr = stats.clustered_stderr(values, clusters)
                        res.n_clusters = len(rows)
                out.append(res)
    return out
