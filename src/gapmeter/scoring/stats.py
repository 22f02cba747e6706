"""Standard errors: lm-eval 0.4.13-identical task/group stderrs, plus gapmeter extras.

Parity notes (why the code looks the way it does):

* ``sample_stddev``/``mean_stderr`` use plain left-to-right Python sums, like lm-eval,
  so the last bits agree.
* ``bootstrap_stderr`` replays lm-eval's RNG stream in one process: iterations are cut
  into ``iters // min(1000, iters)`` chunks of ``min(1000, iters)`` draws, chunk ``c``
  uses ``random.Random(c)`` and ``rng.choices(xs, k=len(xs))`` per replicate.  lm-eval's
  multiprocessing ``imap`` preserves chunk order, so this is bit-identical to both of
  its code paths.  Leftover iterations (``1500 -> 1000``) are silently dropped, as there.
* Groups (``aggregate_group``) are aggregated from *leaf tasks* only: a nested group
  contributes its leaves, never its own aggregate, exactly as lm-eval's ``Group``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np

from gapmeter.scoring.aggregations import AGGREGATIONS
from gapmeter.scoring.aggregations import mean as _mean

__all__ = [
    "ANALYTIC_STDERR",
    "BOOTSTRAPPABLE",
    "BOOTSTRAP_CHUNK",
    "DEFAULT_BOOTSTRAP_ITERS",
    "REDUCED_BOOTSTRAP_METRICS",
    "aggregate_group",
    "aggregate_subtask_metrics",
    "bootstrap_replicates",
    "bootstrap_stderr",
    "clustered_stderr",
    "effective_bootstrap_iters",
    "mean_ci",
    "mean_stderr",
    "pooled_sample_stderr",
    "pop_stddev",
    "sample_stddev",
    "stderr_for_metric",
    "task_stderr",
    "unweighted_mean_stderr",
]

T = TypeVar("T")

#: lm-eval's ``simple_evaluate`` default.
DEFAULT_BOOTSTRAP_ITERS = 100_000
#: Replicates drawn per independently seeded chunk.
BOOTSTRAP_CHUNK = 1000
#: Aggregations whose stderr is bootstrapped (everything else but ``mean`` gets none).
BOOTSTRAPPABLE: frozenset[str] = frozenset(
    {"median", "matthews_corrcoef", "f1", "perplexity", "bleu", "chrf", "chrf++", "ter", "nanmean"}
)
#: Metric *names* (not aggregations) whose bootstrap is capped at 100 iterations.
REDUCED_BOOTSTRAP_METRICS: frozenset[str] = frozenset({"bleu", "chrf", "chrf++", "ter"})


# --------------------------------------------------------------------------- #
# Basic estimators
# --------------------------------------------------------------------------- #


def _require_two(xs: Sequence[float]) -> None:
    """lm-eval divides by n - 1 and crashes for n < 2; we raise a clear error instead."""
    if len(xs) < 2:
        raise ValueError(f"need at least 2 values for a sample stddev, got {len(xs)}")


def sample_stddev(xs: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1)."""
    _require_two(xs)
    mu = _mean(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1))


def pop_stddev(xs: Sequence[float]) -> float:
    """Population standard deviation (ddof=0)."""
    mu = _mean(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / len(xs))


def mean_stderr(xs: Sequence[float]) -> float:
    """Standard error of the mean: ``sample_stddev(xs) / sqrt(n)``; n < 2 raises ValueError.

    (lm-eval raises ZeroDivisionError for n == 1; its evaluator never calls it then and
    reports "N/A" -- see :func:`task_stderr`.)
    """
    return sample_stddev(xs) / math.sqrt(len(xs))


#: Aggregations with a closed-form stderr.  (lm-eval also maps ``acc_all``, but that is
#: a metric function never used as an aggregation, so the entry is unreachable there.)
ANALYTIC_STDERR: dict[str, Callable[[Sequence[float]], float]] = {"mean": mean_stderr}


# --------------------------------------------------------------------------- #
# Bootstrap
# --------------------------------------------------------------------------- #


def bootstrap_replicates(
    statistic: Callable[[list[T]], float], xs: Sequence[T], iters: int, seed: int = 0
) -> list[float]:
    """``statistic`` on resamples of ``xs``, drawn exactly as lm-eval draws them.

    Chunk ``c`` (of ``min(1000, iters)`` replicates) uses ``random.Random(seed + c)``;
    ``seed=0`` is lm-eval's stream.  Only ``iters // chunk`` whole chunks are drawn.
    """
    if iters <= 0:
        raise ValueError("bootstrap needs iters > 0")
    population = list(xs)
    chunk = min(BOOTSTRAP_CHUNK, iters)
    replicates: list[float] = []
    for c in range(iters // chunk):
        rng = random.Random(seed + c)
        replicates.extend(
            statistic(rng.choices(population, k=len(population))) for _ in range(chunk)
        )
    return replicates


def bootstrap_stderr(
    metric_fn: Callable[[list[T]], float], xs: Sequence[T], iters: int, seed: int = 0
) -> float:
    """Bootstrap stderr = sample stddev of the replicates (lm-eval-identical for seed 0).

    Like lm-eval this is the plain (ddof=1 over replicates) bootstrap SD, which for a
    mean approximates the ddof=0 analytic stderr.
    """
    return sample_stddev(bootstrap_replicates(metric_fn, xs, iters, seed))


def effective_bootstrap_iters(metric_name: str, bootstrap_iters: int) -> int:
    """lm-eval caps bleu/chrf/chrf++/ter (by *metric name*) at 100 bootstrap iterations."""
    if metric_name in REDUCED_BOOTSTRAP_METRICS:
        return min(bootstrap_iters, 100)
    return bootstrap_iters


def stderr_for_metric(
    aggregation_name: str,
    bootstrap_iters: int,
    aggregation_fn: Callable[[Sequence[Any]], float] | None = None,
) -> Callable[[Sequence[Any]], float] | None:
    """The stderr estimator lm-eval uses for an aggregation, or None ("N/A").

    * ``bootstrap_iters <= 0`` -> None for every aggregation (even ``mean``);
    * ``mean`` -> :func:`mean_stderr`;
    * median, matthews_corrcoef, f1, perplexity, nanmean, bleu, chrf, chrf++, ter ->
      bootstrap with ``bootstrap_iters`` draws (a ``functools.partial``; ``iters`` is in
      ``.keywords``);
    * anything else (weighted_perplexity, bits_per_byte, custom callables...) -> None.

    ``aggregation_fn`` overrides the function looked up in ``AGGREGATIONS``.
    """
    if bootstrap_iters <= 0:
        return None
    if aggregation_name in BOOTSTRAPPABLE:
        fn = aggregation_fn or AGGREGATIONS[aggregation_name]
        return partial(bootstrap_stderr, fn, iters=bootstrap_iters)
    return ANALYTIC_STDERR.get(aggregation_name)


def task_stderr(
    metric_name: str,
    aggregation_name: str,
    items: Sequence[Any],
    bootstrap_iters: int | None = DEFAULT_BOOTSTRAP_ITERS,
) -> float | None:
    """A task's ``<metric>_stderr`` as lm-eval's evaluator reports it; None means "N/A".

    N/A when ``bootstrap_iters`` is not a positive int, the aggregation has no
    estimator, or there is at most one item.
    """
    if not isinstance(bootstrap_iters, int) or bootstrap_iters <= 0:
        return None
    iters = effective_bootstrap_iters(metric_name, bootstrap_iters)
    estimator = stderr_for_metric(aggregation_name, iters)
    if estimator is None or len(items) <= 1:
        return None
    return float(estimator(items))


# --------------------------------------------------------------------------- #
# Groups
# --------------------------------------------------------------------------- #


def aggregate_subtask_metrics(
    values: Sequence[float], sizes: Sequence[int], weight_by_size: bool = True
) -> float:
    """Group score: size-weighted mean of subtask values (plain mean if not weighted)."""
    if len(values) != len(sizes):
        raise ValueError("values and sizes differ in length")
    weights = list(sizes) if weight_by_size else [1] * len(sizes)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)


def pooled_sample_stderr(stderrs: Sequence[float], sizes: Sequence[int]) -> float:
    """lm-eval's group stderr for the size-weighted mean.

    ``s_i^2 = n_i * se_i^2`` recovers each subtask's sample variance; the pooled
    within-subtask variance is ``sum((n_i - 1) * s_i^2) / (N - k)`` with
    ``N = sum(n_i)``, ``k`` subtasks, and the result is ``sqrt(pooled / N)``.
    Differences *between* subtask means are ignored (no between-group term).
    """
    if len(stderrs) != len(sizes):
        raise ValueError("stderrs and sizes differ in length")
    total = sum(sizes)
    pooled_var = sum((n - 1) * se**2 * n for se, n in zip(stderrs, sizes, strict=True)) / (
        total - len(sizes)
    )
    return math.sqrt(pooled_var / total)


def unweighted_mean_stderr(stderrs: Sequence[float]) -> float:
    """Stderr of a plain mean of k independent subtask means: ``sqrt(sum se_i^2) / k``."""
    return math.sqrt(sum(se**2 for se in stderrs)) / len(stderrs)


def aggregate_group(
    values: Sequence[float],
    stderrs: Sequence[float | None],
    sizes: Sequence[int],
    weight_by_size: bool = True,
) -> tuple[float, float | None]:
    """(score, stderr) of a group from its *leaf* tasks, as lm-eval's ``Group.aggregate``.

    Pass every leaf task under the group, recursively (nested subgroups are flattened,
    so with ``weight_by_size=False`` each leaf -- not each subgroup -- weighs 1).  Sizes
    are the tasks' sample counts.  Stderr is None ("N/A") if any leaf's stderr is None.
    """
    score = aggregate_subtask_metrics(values, sizes, weight_by_size)
    if any(se is None for se in stderrs) or len(stderrs) != len(values):
        return score, None
    known = [float(se) for se in stderrs if se is not None]
    if weight_by_size:
        return score, pooled_sample_stderr(known, sizes)
    return score, unweighted_mean_stderr(known)


# --------------------------------------------------------------------------- #
# gapmeter extras
# --------------------------------------------------------------------------- #


def clustered_stderr(values: Sequence[float], clusters: Sequence[Hashable]) -> float:
    r"""Cluster-robust standard error of the mean (Miller 2024, "Adding Error Bars to Evals").

    Questions sharing a passage/template are correlated; treating them as independent
    understates the error bar.  With ``n`` values, mean ``x̄``, ``d_i = x_i - x̄``::

        SE_iid^2 = sum_i d_i^2 / (n (n - 1))                  (= mean_stderr^2)
        SE_C^2   = SE_iid^2 + (1 / n^2) * sum_c sum_{i != j in c} d_i d_j
                 = SE_iid^2 + (1 / n^2) * sum_c [ (sum_{i in c} d_i)^2 - sum_{i in c} d_i^2 ]

    With one item per cluster the cross term is exactly 0 and ``SE_C == SE_iid``.  The
    radicand is always >= 0 because ``sum_c (sum_{i in c} d_i)^2 >= 0``.
    """
    if len(values) != len(clusters):
        raise ValueError("values and clusters differ in length")
    _require_two(values)
    n = len(values)
    deviations = np.asarray(values, dtype=np.float64) - _mean(values)
    ids: dict[Hashable, int] = {}
    index = np.array([ids.setdefault(c, len(ids)) for c in clusters], dtype=np.int64)
    cluster_sums = np.bincount(index, weights=deviations, minlength=len(ids))
    cluster_sq = np.bincount(index, weights=deviations**2, minlength=len(ids))
    cross = float(np.sum(cluster_sums**2 - cluster_sq))
    iid_var = float(np.sum(deviations**2)) / (n * (n - 1))
    return math.sqrt(max(iid_var + cross / n**2, 0.0))


def mean_ci(mean: float, se: float, level: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval ``mean ± z_{(1+level)/2} · se``."""
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    return mean - z * se, mean + z * se
