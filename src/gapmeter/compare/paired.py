"""The paired difference between two models on the same items, with its CI and p-value.

Which test (see docs/statistics.md):

* items grouped in clusters (MMLU subjects, passages) → z-test with the cluster-robust standard
  error of the per-item differences (Miller 2024, eq. for clustered paired differences);
* 0/1 scores → McNemar's test (mid-p), interval ``d̄ ± z · SD(d)/sqrt(n)``;
* other per-item scores (mc2 probabilities, partial credit) → seeded paired bootstrap;
* a corpus-level aggregation (F1, MCC, BLEU, perplexity) → paired bootstrap of the aggregate.

The difference is always ``A - B`` in the metric's own units; whether that is "better" depends on
``higher_is_better`` and is decided by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gapmeter.compare.bootstrap import (
    DEFAULT_BOOTSTRAP_SEED,
    DEFAULT_ITERS,
    paired_bootstrap_mean,
    paired_bootstrap_statistic,
    percentile_interval,
    shift_p_value,
)
from gapmeter.compare.mcnemar import mcnemar
from gapmeter.compare.power import critical_z
from gapmeter.scoring.stats import clustered_stderr

__all__ = ["PairedDifference", "TestName", "is_binary", "paired_difference", "paired_statistic"]

TestName = Literal["mcnemar-midp", "paired-bootstrap", "clustered-z", "identical"]


@dataclass(frozen=True)
class PairedDifference:
    n: int  # paired items
    score_a: float
    score_b: float
    diff: float  # A - B
    se: float  # standard error of diff
    ci_low: float
    ci_high: float
    p_value: float
    test: TestName
    n_clusters: int | None = None
    a_only: int | None = None  # 0/1 metrics: items only A got right
    b_only: int | None = None


def is_binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0.0, 1.0)).all())


def _normal_p(diff: float, se: float) -> float:
    if se <= 0:
        return 1.0 if diff == 0 else 0.0
    return math.erfc(abs(diff) / se / math.sqrt(2.0))


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    clusters: Sequence[Hashable] | None = None,
    level: float = 0.95,
    iters: int = DEFAULT_ITERS,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> PairedDifference:
    """Difference of the means of per-item scores ``a`` and ``b`` (same items, same order)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError("paired scores must be two non-empty 1-d arrays of the same length")
    n = len(x)
    d = x - y
    diff = float(d.mean())
    z = critical_z(1.0 - level)
    base: dict[str, Any] = {"n": n, "score_a": float(x.mean()), "score_b": float(y.mean()), "diff": diff}
    binary = is_binary(x) and is_binary(y)
    counts: dict[str, int] = {}
    if binary:
        counts = {"a_only": int(np.sum(d > 0)), "b_only": int(np.sum(d < 0))}
    if not np.any(d):
        return PairedDifference(**base, se=0.0, ci_low=0.0, ci_high=0.0, p_value=1.0,
                                test="identical", **counts)
    if clusters is not None:
        if len(clusters) != n:
            raise ValueError("clusters and scores differ in length")
        n_clusters = len(set(clusters))
        if 1 < n_clusters < n:
            se = clustered_stderr(d.tolist(), list(clusters))
            return PairedDifference(**base, se=se, ci_low=diff - z * se, ci_high=diff + z * se,
                                    p_value=_normal_p(diff, se), test="clustered-z",
                                    n_clusters=n_clusters, **counts)
    if binary:
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
        test = mcnemar(x, y)
        return PairedDifference(**base, se=se, ci_low=diff - z * se, ci_high=diff + z * se,
                                p_value=test.p_mid, test="mcnemar-midp", **counts)
    reps = paired_bootstrap_mean(x, y, iters=iters, seed=seed)
    lo, hi = percentile_interval(reps, level)
    return PairedDifference(**base, se=float(reps.std(ddof=1)), ci_low=lo, ci_high=hi,
                            p_value=shift_p_value(reps, diff), test="paired-bootstrap")


def paired_statistic(
    statistic: Callable[[list[Any]], float],
    items_a: Sequence[Any],
    items_b: Sequence[Any],
    *,
    level: float = 0.95,
    iters: int = 2000,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> PairedDifference:
    """Difference of a corpus-level statistic (F1, MCC, BLEU...) by paired bootstrap."""
    score_a = float(statistic(list(items_a)))
    score_b = float(statistic(list(items_b)))
    diff = score_a - score_b
    reps = paired_bootstrap_statistic(statistic, items_a, items_b, iters=iters, seed=seed)
    reps = reps[np.isfinite(reps)]
    if len(reps) < 2 or not np.any(reps != reps[0]):
        same = diff == 0
        return PairedDifference(len(items_a), score_a, score_b, diff, 0.0, diff, diff,
                                1.0 if same else 0.0, "identical" if same else "paired-bootstrap")
    lo, hi = percentile_interval(reps, level)
    return PairedDifference(len(items_a), score_a, score_b, diff, float(reps.std(ddof=1)), lo, hi,
                            shift_p_value(reps, diff), "paired-bootstrap")
