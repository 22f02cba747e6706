"""Prompt sensitivity: the same items under several prompt formats, per model.

A run made with ``--prompt_variants`` holds a task (or group) and its declared variants
(``prompt_variant: {of, format}`` in the YAML). For each such set this reports, per model, the
score under every format (its own primary metric: accuracy for every built-in variant), the
mean, min, max and spread (max - min) with a paired test of best vs worst format on the same
items, and, across models, the rank with ties under each format and whether the ranking changes
from one format to another (Sclar et al. 2024 and Mizrahi et al. 2024 show that it often does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from gapmeter.compare.bootstrap import DEFAULT_BOOTSTRAP_SEED, DEFAULT_ITERS
from gapmeter.compare.paired import PairedDifference
from gapmeter.compare.ranking import ranks_from_matrix
from gapmeter.compare.report import RunSummary, Unit, paired_data, paired_test, units_for
from gapmeter.compare.runs import StoredRun

__all__ = ["DEFAULT_FORMAT", "FormatScore", "ModelSensitivity", "SensitivityReport", "prompt_sensitivity", "variant_sets"]

#: The label of a task's own prompt (lm-eval 0.4.13's for every built-in task).
DEFAULT_FORMAT = "default"


@dataclass(frozen=True)
class FormatScore:
    format: str
    unit: Unit
    value: float
    n: int
    ci: tuple[float, float] | None
    rank: int  # among the models, under this format


@dataclass(frozen=True)
class ModelSensitivity:
    run: RunSummary
    scores: list[FormatScore]
    mean: float
    min: float
    max: float
    spread: float
    spread_test: PairedDifference | None  # best vs worst format on shared items


@dataclass(frozen=True)
class SensitivityReport:
    base: str
    formats: list[str]
    models: list[ModelSensitivity]
    ranking_changes: bool  # tie-aware ranks differ between formats
    order_changes: bool  # the order of point estimates differs between formats


def variant_sets(run: StoredRun) -> dict[str, dict[str, str]]:
    """``base -> {format: task or group name}`` for every base with at least one variant."""
    sets: dict[str, dict[str, str]] = {}
    groups_by_leaves = {frozenset(run.leaves_under(n)): n for n, t in run.tasks.items() if t.kind == "group"}
    for name in run.top_names():
        info = run.tasks[name]
        if info.kind == "task":
            pv = info.config.get("prompt_variant")
            if pv:
                sets.setdefault(pv["of"], {})[pv["format"]] = name
            continue
        leaves = run.leaves_under(name)
        found = [run.tasks[leaf].config.get("prompt_variant") for leaf in leaves]
        pvs: list[dict[str, str]] = [pv for pv in found if pv]
        if leaves and len(pvs) == len(found) and len({pv["format"] for pv in pvs}) == 1:
            base = groups_by_leaves.get(frozenset(pv["of"] for pv in pvs))
            if base is not None:
                sets.setdefault(base, {})[pvs[0]["format"]] = name
    for base, formats in sets.items():
        if base in run.tasks:
            formats[DEFAULT_FORMAT] = base
    return {b: dict(sorted(f.items(), key=lambda kv: (kv[0] != DEFAULT_FORMAT, kv[0])))
            for b, f in sets.items() if len(f) > 1}


def _unit(run: StoredRun, name: str) -> Unit:
    return units_for(run, [name])[0]


def _format_values(run: StoredRun, unit: Unit) -> dict[tuple[str, int, str], Any]:
    """Per-doc values keyed by (base leaf, doc_id, doc_hash) so formats pair up."""
    out: dict[tuple[str, int, str], Any] = {}
    for leaf in unit.leaves:
        pv = run.tasks[leaf].config.get("prompt_variant")
        base_leaf = pv["of"] if pv else leaf
        for (doc_id, doc_hash), v in run.doc_values(leaf, unit.metric, unit.filter).items():
            out[(base_leaf, doc_id, doc_hash)] = v
    return out


def _spread_test(run: StoredRun, hi: Unit, lo: Unit, iters: int, seed: int) -> PairedDifference | None:
    from gapmeter.compare.paired import paired_difference

    va, vb = _format_values(run, hi), _format_values(run, lo)
    shared = sorted(set(va) & set(vb))
    if len(shared) < 2:
        return None
    return paired_difference([float(va[k]) for k in shared], [float(vb[k]) for k in shared],
                             iters=iters, seed=seed)


def prompt_sensitivity(runs: Sequence[StoredRun], *, alpha: float = 0.05, iters: int = DEFAULT_ITERS,
                       seed: int = DEFAULT_BOOTSTRAP_SEED) -> list[SensitivityReport]:
    if not runs:
        return []
    per_run = [variant_sets(r) for r in runs]
    bases = [b for b in per_run[0] if all(b in s for s in per_run)]
    reports = []
    for base in bases:
        formats = [f for f in per_run[0][base] if all(f in s[base] for s in per_run)]
        if len(formats) < 2:
            continue
        k = len(runs)
        ranks: dict[str, list[int]] = {}
        units: dict[str, list[Unit]] = {}
        for fmt in formats:
            units[fmt] = [_unit(r, s[base][fmt]) for r, s in zip(runs, per_run, strict=True)]
            better = [[False] * k for _ in range(k)]
            for i in range(k):
                for j in range(i + 1, k):
                    data = paired_data(runs[i], runs[j], units[fmt][i])
                    if not data.a:
                        continue
                    res = paired_test(units[fmt][i], data, iters=iters, seed=seed)
                    if res.p_value < alpha and res.diff != 0:
                        win = (i, j) if (res.diff > 0) == units[fmt][i].higher_is_better else (j, i)
                        better[win[0]][win[1]] = True
            ranks[fmt] = ranks_from_matrix(better)
        models = []
        orders = []
        for idx, run in enumerate(runs):
            stored = run.metric_values()
            scores = []
            for fmt in formats:
                u = units[fmt][idx]
                m = stored.get((u.name, u.metric, u.filter))
                if m is None or m.value is None:
                    continue
                ci = (m.ci_low, m.ci_high) if m.ci_low is not None and m.ci_high is not None else None
                scores.append(FormatScore(fmt, u, float(m.value), int(m.n), ci, ranks[fmt][idx]))
            if not scores:
                continue
            values = [s.value for s in scores]
            best = max(scores, key=lambda s: s.value)
            worst = min(scores, key=lambda s: s.value)
            test = _spread_test(run, best.unit, worst.unit, iters, seed) if best is not worst else None
            models.append(ModelSensitivity(RunSummary.of(run), scores, sum(values) / len(values),
                                           min(values), max(values), max(values) - min(values), test))
            orders.append(values)
        rank_vectors = {tuple(ranks[f]) for f in formats}
        order_vectors = set()
        for f_idx in range(len(formats)):
            col = [vals[f_idx] for vals in orders if len(vals) == len(formats)]
            order_vectors.add(tuple(sorted(range(len(col)), key=partial(_negated, col))))
        reports.append(SensitivityReport(base, formats, models, len(rank_vectors) > 1 and k > 1,
                                         len(order_vectors) > 1 and k > 1))
    return reports


def _negated(values: Sequence[float], i: int) -> float:
    """Sort key: the i-th value, largest first."""
    return -values[i]
