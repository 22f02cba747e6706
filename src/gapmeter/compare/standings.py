"""Standings of several runs: per task, each run's score with its CI and a rank with ties.

Ranks follow :mod:`gapmeter.compare.ranking` (1 + the number of runs significantly better),
with "significantly better" decided by the same paired tests as ``compare`` (unadjusted, as in
Chatbot Arena): per-item pairing makes ranks sharper than comparing independent CIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gapmeter.compare.bootstrap import DEFAULT_BOOTSTRAP_SEED, DEFAULT_ITERS
from gapmeter.compare.ranking import ranks_from_matrix
from gapmeter.compare.report import (
    RunSummary,
    Unit,
    compare_stored,
    paired_data,
    paired_test,
    units_for,
)
from gapmeter.compare.runs import StoredRun, open_run

__all__ = ["Standing", "Standings", "rank_runs", "rank_stored"]


@dataclass(frozen=True)
class Standing:
    run: RunSummary
    value: float | None
    stderr: float | None
    ci: tuple[float, float] | None
    n: int | None
    rank: int


@dataclass(frozen=True)
class Standings:
    unit: Unit
    entries: list[Standing]  # in the order the runs were given


def rank_stored(runs: Sequence[StoredRun], *, metric: str | None = None, subtasks: bool = False,
                alpha: float = 0.05, iters: int = DEFAULT_ITERS,
                seed: int = DEFAULT_BOOTSTRAP_SEED) -> list[Standings]:
    if len(runs) < 2:
        raise ValueError("ranking needs at least two runs")
    for other in runs[1:]:
        compare_stored(runs[0], other, metric=metric, subtasks=subtasks, iters=1, seed=seed)  # config check
    shared = set.intersection(*({n for n, t in r.tasks.items() if t.kind == "task"} for r in runs))
    top = [n for n in runs[0].top_names() if all(n in r.tasks for r in runs)]
    units = [u for u in units_for(runs[0], top, metric=metric, subtasks=subtasks) if set(u.leaves) <= shared]
    stored = [r.metric_values() for r in runs]
    out = []
    for unit in units:
        k = len(runs)
        better = [[False] * k for _ in range(k)]
        for i in range(k):
            for j in range(i + 1, k):
                data = paired_data(runs[i], runs[j], unit)
                if not data.a:
                    continue
                res = paired_test(unit, data, iters=iters, seed=seed)
                if res.p_value < alpha and res.diff != 0:
                    i_higher = res.diff > 0
                    winner, loser = (i, j) if i_higher == unit.higher_is_better else (j, i)
                    better[winner][loser] = True
        ranks = ranks_from_matrix(better)
        entries = []
        for r, values, rank in zip(runs, stored, ranks, strict=True):
            m = values.get((unit.name, unit.metric, unit.filter))
            ci = (m.ci_low, m.ci_high) if m is not None and m.ci_low is not None and m.ci_high is not None else None
            entries.append(Standing(RunSummary.of(r), m.value if m else None, m.stderr if m else None,
                                    ci, m.n if m else None, rank))
        out.append(Standings(unit, entries))
    return out


def rank_runs(store: str | None, refs: Sequence[str | StoredRun], *, metric: str | None = None,
              subtasks: bool = False, alpha: float = 0.05, iters: int = DEFAULT_ITERS,
              seed: int = DEFAULT_BOOTSTRAP_SEED) -> list[Standings]:
    """Standings of runs named by id / prefix (in ``store``) or output directory."""
    runs = [r if isinstance(r, StoredRun) else open_run(r, store) for r in refs]
    return rank_stored(runs, metric=metric, subtasks=subtasks, alpha=alpha, iters=iters, seed=seed)
