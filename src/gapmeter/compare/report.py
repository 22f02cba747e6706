"""``compare_runs``: per task, is run A better than run B, worse, or not detectably different?

For each compared unit (a top-level task, or a group with an aggregate score; its leaf tasks
with ``subtasks=True``) the two runs are paired on shared documents (same task, doc id and doc
hash), the difference gets a CI and a p-value (:mod:`gapmeter.compare.paired`), the p-values of
all units are Holm-adjusted together, and the verdict is read from the adjusted p-value and the
metric's direction. Each row also carries the minimum detectable difference at 80% power for
its number of items, so "no detectable difference" says how large a gap could hide there.

Runs whose shared tasks were configured differently (prompt, shots, version, metrics, filters)
are refused with one error listing the differences: their scores measure different things.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gapmeter.compare.bootstrap import DEFAULT_BOOTSTRAP_SEED, DEFAULT_ITERS
from gapmeter.compare.multiplicity import holm
from gapmeter.compare.paired import PairedDifference, paired_difference, paired_statistic
from gapmeter.compare.power import critical_z, minimum_detectable_difference
from gapmeter.compare.runs import DocKey, StoredRun, TaskInfo, open_run
from gapmeter.errors import ConfigError
from gapmeter.scoring.metrics import AGGREGATIONS

__all__ = [
    "ComparisonReport",
    "ComparisonRow",
    "PairedData",
    "RunSummary",
    "Unit",
    "Verdict",
    "compare_runs",
    "compare_stored",
    "config_differences",
    "paired_data",
    "paired_test",
    "units_for",
]

Verdict = Literal["better", "worse", "no detectable difference"]
#: Config keys that do not change what a score measures (where the data lives, labels).
# added_metrics: scores given after the run (a judge's): runs judged and not judged still compare.
IGNORED_CONFIG_KEYS = frozenset({"description_text", "tags", "dimension", "source", "prompt_variant", "added_metrics"})


@dataclass(frozen=True)
class RunSummary:
    id: str
    label: str
    model: str
    model_args: str
    fewshot_seed: Any
    db_url: str

    @classmethod
    def of(cls, run: StoredRun) -> RunSummary:
        return cls(run.id, run.label, run.model, run.model_args, run.fewshot_seed, run.db_url)


@dataclass(frozen=True)
class Unit:
    """One compared score: a leaf task or a group aggregate, for one metric and filter."""

    name: str
    kind: Literal["task", "group"]
    metric: str
    filter: str
    aggregation: str
    higher_is_better: bool
    leaves: tuple[str, ...]
    weight_by_size: bool = True


@dataclass(frozen=True)
class ComparisonRow:
    unit: Unit
    result: PairedDifference
    only_a: int  # docs of this unit that only run A has
    only_b: int
    p_holm: float
    verdict: Verdict
    mde: float | None  # minimum detectable |difference| at 80% power, alpha 0.05, this n


@dataclass(frozen=True)
class ComparisonReport:
    run_a: RunSummary
    run_b: RunSummary
    rows: list[ComparisonRow]
    alpha: float
    level: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PairedData:
    """Aligned per-doc values of two runs for one unit (leaf-major, doc-key order)."""

    a: list[Any]
    b: list[Any]
    clusters: list[str] | None
    strata: list[str]  # the leaf task of each doc
    only_a: int
    only_b: int


# --------------------------------------------------------------------------- config check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def config_differences(a: StoredRun, b: StoredRun, names: Sequence[str]) -> list[str]:
    """Human-readable differences of the shared tasks' configs, grouped by what differs."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for name in names:
        ta, tb = a.tasks[name], b.tasks[name]
        fa: dict[str, Any] = {}
        fb: dict[str, Any] = {}
        _flat("", {k: v for k, v in ta.config.items() if k not in IGNORED_CONFIG_KEYS}, fa)
        _flat("", {k: v for k, v in tb.config.items() if k not in IGNORED_CONFIG_KEYS}, fb)
        # The shots and version actually run (the YAML's num_fewshot may have been overridden).
        fa.update(version=ta.version, num_fewshot=ta.num_fewshot)
        fb.update(version=tb.version, num_fewshot=tb.num_fewshot)
        for key in sorted(set(fa) | set(fb)):
            va, vb = fa.get(key), fb.get(key)
            if va != vb:
                found.setdefault((key, _short(va), _short(vb)), []).append(name)
    out = []
    for (key, va, vb), tasks in found.items():
        where = tasks[0] if len(tasks) == 1 else f"{len(tasks)} tasks ({', '.join(tasks[:3])}{', ...' if len(tasks) > 3 else ''})"
        out.append(f"{where}: {key} {va} vs {vb}")
    return out


# --------------------------------------------------------------------------- units


def _metric_info(info: TaskInfo, metric: str | None) -> list[tuple[str, str, bool]]:
    metrics = info.metrics
    chosen = [m for m in metrics if m.metric == metric] if metric else metrics[:1]
    return [(m.metric, m.aggregation, m.higher_is_better) for m in chosen]


def units_for(run: StoredRun, names: Sequence[str], *, metric: str | None = None,
              subtasks: bool = False) -> list[Unit]:
    """The scores to compare: top-level tasks, groups with an aggregate (their leaves too with
    ``subtasks``), and the children of groups without one."""
    units: list[Unit] = []
    seen: set[tuple[str, str, str]] = set()

    def add(unit: Unit) -> None:
        key = (unit.name, unit.metric, unit.filter)
        if key not in seen:
            seen.add(key)
            units.append(unit)

    def leaf_units(name: str) -> None:
        info = run.tasks[name]
        for m, agg, hib in _metric_info(info, metric):
            for f in info.filters:
                add(Unit(name, "task", m, f, agg, hib, (name,)))

    def visit(name: str) -> None:
        info = run.tasks.get(name)
        if info is None:
            return
        if info.kind == "task":
            leaf_units(name)
            return
        aggregates = [a for a in info.aggregates if metric is None or a["metric"] == metric]
        if not aggregates:
            for child in info.children:
                visit(child)
            return
        leaves = tuple(run.leaves_under(name))
        for agg in aggregates[: None if metric else 1]:
            hib = next((mi.higher_is_better for leaf in leaves for mi in run.tasks[leaf].metrics
                        if mi.metric == agg["metric"]), True)
            for f in agg.get("filter_list", ["none"]):
                add(Unit(name, "group", agg["metric"], f, "mean", hib, leaves,
                         bool(agg.get("weight_by_size", True))))
        if subtasks:
            for leaf in leaves:
                leaf_units(leaf)

    for name in names:
        visit(name)
    return units


# --------------------------------------------------------------------------- data and tests


def paired_data(a: StoredRun, b: StoredRun, unit: Unit) -> PairedData:
    xs: list[Any] = []
    ys: list[Any] = []
    clusters: list[str] = []
    strata: list[str] = []
    any_clusters = False
    only_a = only_b = 0
    for leaf in unit.leaves:
        va = a.doc_values(leaf, unit.metric, unit.filter)
        vb = b.doc_values(leaf, unit.metric, unit.filter)
        shared: list[DocKey] = sorted(set(va) & set(vb))
        only_a += len(va) - len(shared)
        only_b += len(vb) - len(shared)
        within = a.doc_clusters(leaf)
        any_clusters = any_clusters or within is not None
        for key in shared:
            xs.append(va[key])
            ys.append(vb[key])
            strata.append(leaf)
            clusters.append(f"{leaf}/{within[key]}" if within else f"{leaf}/{key[0]}")
    return PairedData(xs, ys, clusters if any_clusters else None, strata, only_a, only_b)


def _stratified(data: PairedData, level: float) -> PairedDifference:
    """Unweighted group mean (``weight_by_size: false``): mean of per-leaf differences."""
    x = np.asarray(data.a, dtype=float)
    y = np.asarray(data.b, dtype=float)
    strata = np.asarray(data.strata)
    means_a, means_b, diffs, variances = [], [], [], []
    for leaf in dict.fromkeys(data.strata):
        m = strata == leaf
        d = x[m] - y[m]
        means_a.append(x[m].mean())
        means_b.append(y[m].mean())
        diffs.append(d.mean())
        variances.append(d.var(ddof=1) / m.sum() if m.sum() > 1 else 0.0)
    k = len(diffs)
    diff = float(np.mean(diffs))
    se = math.sqrt(sum(variances)) / k
    z = critical_z(1.0 - level)
    p = math.erfc(abs(diff) / se / math.sqrt(2.0)) if se > 0 else float(diff == 0)
    return PairedDifference(len(x), float(np.mean(means_a)), float(np.mean(means_b)), diff, se,
                            diff - z * se, diff + z * se, p, "clustered-z" if se > 0 else "identical")


def paired_test(unit: Unit, data: PairedData, *, level: float = 0.95, iters: int = DEFAULT_ITERS,
                seed: int = DEFAULT_BOOTSTRAP_SEED) -> PairedDifference:
    if unit.aggregation != "mean":
        fn = AGGREGATIONS.get(unit.aggregation)
        if fn is None:
            raise ConfigError(f"{unit.name}: {unit.metric} uses aggregation {unit.aggregation!r}, which compare cannot resample")
        items_a = [tuple(v) if isinstance(v, list) else v for v in data.a]
        items_b = [tuple(v) if isinstance(v, list) else v for v in data.b]
        return paired_statistic(fn, items_a, items_b, level=level, iters=min(iters, 2000), seed=seed)
    if unit.kind == "group" and not unit.weight_by_size:
        return _stratified(data, level)
    return paired_difference([float(v) for v in data.a], [float(v) for v in data.b],
                             clusters=data.clusters, level=level, iters=iters, seed=seed)


def _verdict(result: PairedDifference, p_adj: float, alpha: float, higher_is_better: bool) -> Verdict:
    if p_adj >= alpha or result.diff == 0:
        return "no detectable difference"
    a_higher = result.diff > 0
    return "better" if a_higher == higher_is_better else "worse"


def compare_stored(a: StoredRun, b: StoredRun, *, metric: str | None = None, subtasks: bool = False,
                   alpha: float = 0.05, level: float = 0.95, iters: int = DEFAULT_ITERS,
                   seed: int = DEFAULT_BOOTSTRAP_SEED) -> ComparisonReport:
    """Compare two opened runs (see :func:`compare_runs`)."""
    leaves_a = {n for n, t in a.tasks.items() if t.kind == "task"}
    leaves_b = {n for n, t in b.tasks.items() if t.kind == "task"}
    shared = sorted(leaves_a & leaves_b)
    if not shared:
        raise ConfigError(f"runs {a.id} and {b.id} share no task (A: {', '.join(sorted(leaves_a)[:5])}; B: {', '.join(sorted(leaves_b)[:5])})")
    diffs = config_differences(a, b, shared)
    if diffs:
        more = f"; and {len(diffs) - 6} more" if len(diffs) > 6 else ""
        raise ConfigError(f"cannot compare runs {a.id} and {b.id}: their task configs differ: {'; '.join(diffs[:6])}{more}")
    notes: list[str] = []
    if a.fewshot_seed != b.fewshot_seed:
        notes.append(f"few-shot seeds differ ({a.fewshot_seed} vs {b.fewshot_seed}): same configs, different examples per doc")
    missing = sorted(leaves_a ^ leaves_b)
    if missing:
        notes.append(f"not compared (in one run only): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    top = [n for n in a.top_names() if n in b.tasks] or shared
    units = [u for u in units_for(a, top, metric=metric, subtasks=subtasks) if set(u.leaves) <= set(shared)]
    if not units:
        raise ConfigError(f"no shared task has metric {metric!r}" if metric else "nothing to compare")
    results = []
    no_items = a.aggregates_only | b.aggregates_only
    for unit in units:
        if no_items & set(unit.leaves):
            which = ", ".join(r.id for r in (a, b) if r.aggregates_only & set(unit.leaves))
            notes.append(f"{unit.name}: no paired test (run {which} was imported without per-doc samples; "
                         "only its aggregate scores are stored)")
            continue
        data = paired_data(a, b, unit)
        if not data.a:
            notes.append(f"{unit.name}: no shared documents (different data or --limit ranges)")
            continue
        results.append((unit, data, paired_test(unit, data, level=level, iters=iters, seed=seed)))
    adjusted = holm([r.p_value for _, _, r in results])
    rows = []
    for (unit, data, res), p_adj in zip(results, adjusted, strict=True):
        mde = minimum_detectable_difference(res.se, alpha=alpha) if res.se > 0 else None
        rows.append(ComparisonRow(unit, res, data.only_a, data.only_b, p_adj,
                                  _verdict(res, p_adj, alpha, unit.higher_is_better), mde))
    return ComparisonReport(RunSummary.of(a), RunSummary.of(b), rows, alpha, level, notes)


def compare_runs(store: str | None, run_a: str | StoredRun, run_b: str | StoredRun, **options: Any) -> ComparisonReport:
    """Compare two runs named by id / prefix (in ``store``, a URL or SQLite file) or output dir.

    Options: ``metric`` (default: each task's first metric), ``subtasks`` (also a group's leaf
    tasks), ``alpha`` (0.05), ``level`` (0.95), ``iters`` and ``seed`` (bootstrap).
    """
    a = run_a if isinstance(run_a, StoredRun) else open_run(run_a, store)
    b = run_b if isinstance(run_b, StoredRun) else open_run(run_b, store)
    return compare_stored(a, b, **options)
