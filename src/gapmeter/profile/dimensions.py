"""Per-dimension scores of a run: comprehension, generation, reasoning, knowledge/memory.

Every task declares its ``dimension`` in YAML (all built-ins do; see ``tasks/builtin``). A
dimension's score is the unweighted mean of its tasks' main scores (a group with an aggregate,
such as ``mmlu``, counts as one task), so a 57-subject benchmark does not drown a 200-item one.
Tasks are independent samples, so ``SE = sqrt(sum se_t²) / k`` with each task's larger of the
iid and clustered standard errors; the CI is normal. Only scores on a 0-1 scale where higher is
better enter (accuracy, exact match, mc2); a higher-is-better metric whose range the metric
registry declares (``judge_score``: 1–10) enters rescaled to 0–1, ``(s - lo) / (hi - lo)``, and
is marked so (``TaskScore.rescaled_from``, a note); others (perplexity, a metric of unknown range
outside 0-1) are listed as skipped. Prompt variants are left out: they re-measure the same items.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from gapmeter.compare.power import critical_z
from gapmeter.compare.report import Unit, units_for
from gapmeter.compare.runs import StoredRun
from gapmeter.scoring.metrics import METRICS
from gapmeter.tasks.schema import DIMENSIONS

__all__ = ["DimensionScore", "RunProfile", "TaskScore", "run_profile_of"]


@dataclass(frozen=True)
class TaskScore:
    unit: Unit
    dimension: str
    value: float
    stderr: float | None
    n: int
    rescaled_from: tuple[float, float] | None = None  # the metric's (lo, hi), mapped to 0-1


@dataclass(frozen=True)
class DimensionScore:
    dimension: str
    value: float
    stderr: float | None
    ci: tuple[float, float] | None
    n_items: int
    tasks: list[TaskScore]


@dataclass(frozen=True)
class RunProfile:
    run_id: str
    label: str
    dimensions: dict[str, DimensionScore]
    notes: list[str] = field(default_factory=list)


def _dimension_of(run: StoredRun, unit: Unit) -> str | None:
    dims = Counter(run.tasks[leaf].dimension for leaf in unit.leaves)
    if len(dims) == 1:
        return next(iter(dims))
    return None


def _units(run: StoredRun, metric: str | None = None) -> tuple[list[Unit], list[str]]:
    """Top-level units, splitting groups whose leaves span several dimensions."""
    notes: list[str] = []
    out: list[Unit] = []
    for unit in units_for(run, run.top_names(), metric=metric):
        if any(run.tasks[leaf].config.get("prompt_variant") for leaf in unit.leaves):
            continue
        if unit.kind == "group" and _dimension_of(run, unit) is None:
            out.extend(u for u in units_for(run, list(unit.leaves), metric=metric))
        else:
            out.append(unit)
    return out, notes


def _declared_range(metric: str) -> tuple[float, float] | None:
    spec = METRICS.get(metric)
    return spec.value_range if spec is not None else None


def run_profile_of(run: StoredRun, *, level: float = 0.95, metric: str | None = None) -> RunProfile:
    """``metric``: profile on this metric only (e.g. a judge's ``judge_pass``); None: every metric."""
    units, notes = _units(run, metric)
    stored = run.metric_values()
    by_dim: dict[str, list[TaskScore]] = {d: [] for d in DIMENSIONS}
    missing, skipped, rescaled = [], [], []
    for unit in units:
        dim = _dimension_of(run, unit)
        if dim is None:
            missing.append(unit.name)
            continue
        m = stored.get((unit.name, unit.metric, unit.filter))
        if m is None or m.value is None:
            continue
        declared = _declared_range(unit.metric)
        span = declared if declared is not None and declared != (0.0, 1.0) else None
        lo, hi = span if span is not None else (0.0, 1.0)
        if not unit.higher_is_better or not lo <= m.value <= hi:
            skipped.append(f"{unit.name} {unit.metric}")
            continue
        se = max(x for x in (m.stderr, m.clustered_stderr, 0.0) if x is not None) if m.stderr is not None else None
        value = (float(m.value) - lo) / (hi - lo)
        se = se / (hi - lo) if se is not None else None
        if span is not None:
            rescaled.append(f"{unit.name} {unit.metric}")
        by_dim.setdefault(dim, []).append(TaskScore(unit, dim, value, se, int(m.n), span))
    if missing:
        notes.append(f"no dimension declared (add `dimension:` to the YAML): {', '.join(missing)}")
    if skipped:
        notes.append(f"not on a 0-1 higher-is-better scale, left out: {', '.join(skipped)}")
    for metric in sorted({r.split()[-1] for r in rescaled}):
        lo, hi = _declared_range(metric) or (0.0, 1.0)
        which = ", ".join(r for r in rescaled if r.split()[-1] == metric)
        notes.append(f"{metric} rescaled from {lo:g}-{hi:g} to 0-1, (s - {lo:g}) / {hi - lo:g}: {which}")
    z = critical_z(1.0 - level)
    dims: dict[str, DimensionScore] = {}
    for dim, scores in by_dim.items():
        if not scores:
            continue
        k = len(scores)
        value = sum(s.value for s in scores) / k
        stderrs = [s.stderr for s in scores if s.stderr is not None]
        se = math.sqrt(sum(e**2 for e in stderrs)) / k if len(stderrs) == k else None
        ci = (value - z * se, value + z * se) if se is not None else None
        dims[dim] = DimensionScore(dim, value, se, ci, sum(s.n for s in scores), scores)
    return RunProfile(run.id, run.label, dims, notes)
