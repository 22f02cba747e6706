"""The audit's statistics: one-sided tests, effect sizes, Holm's correction, ROUGE-L.

Every detector reports a p-value for "this model has seen these items" and an effect size in
the detector's own unit. The tests are the textbook ones (no refinements that would need their
own validation); their false-positive rate on clean controls is measured by the self-test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

Z95 = 1.959963984540054


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float


def one_sided_t(values: Sequence[float]) -> TestResult:
    """One-sample t-test of mean > 0 (Oren et al.'s sharded test): t = mean/sd·√r, p = 1−T_{r−1}(t)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        raise ValueError("a t-test needs at least 2 values")
    sd = float(a.std(ddof=1))
    if sd == 0.0:
        mean = float(a.mean())
        return TestResult(math.copysign(math.inf, mean) if mean else 0.0, 0.0 if mean > 0 else 1.0)
    t = float(a.mean()) / sd * math.sqrt(len(a))
    return TestResult(t, float(st.t.sf(t, df=len(a) - 1)))


def _centred_pools(pools: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Per shard, c[u] = L(u) − mean_{v≠u} L(v) = n/(n−1)·(L(u) − mean): the shard's difference if
    ordering u were the canonical one (the randomization tests' null draws)."""
    if len(pools) < 1 or any(len(p) < 2 for p in pools):
        raise ValueError("every shard needs its canonical ordering and at least one other")
    out = []
    for p in pools:
        a = np.asarray(p, dtype=float)
        out.append((a - a.mean()) * len(a) / (len(a) - 1))
    return out


def pooled_exchangeability_test(
    pools: Sequence[Sequence[float]], *, n_resamples: int = 10_000, rng: np.random.Generator | None = None,
) -> TestResult:
    """Stratified randomization test that the canonical ordering is special (one-sided).

    ``pools[i]`` holds shard i's log-likelihood under its canonical ordering (first) and under
    distinct other orderings of the same items. Under the exchangeability null the canonical
    ordering is a uniform draw from the shard's orderings, so given the pool (an unordered set of
    distinct orderings containing it) it is equally likely to be any member, independently per
    shard. The statistic is Oren et al.'s mean shard difference, mean_i [L_i(canonical) −
    mean L_i(others)]; its null distribution re-draws which member of every pool is canonical.
    Exact enumeration when the pools allow at most ``n_resamples`` assignments, else Monte Carlo
    with p = (1 + #{T* ≥ T}) / (1 + B), which keeps P(p ≤ α) ≤ α. With two orderings per shard
    (2-item shards) this is the sign-flip test of the shard differences. Valid whatever the tails
    of the differences, unlike the t-test (docs/audit.md has the measured rates).

    scipy.stats.permutation_test covers the 2-ordering case (sign flips) but not pools of more
    than two members per stratum, hence this implementation (checked against scipy in the tests).
    """
    rows = _centred_pools(pools)
    sizes = np.array([len(c) for c in rows])
    # padding columns are never drawn
    centred = np.zeros((len(rows), int(sizes.max())))
    for i, c in enumerate(rows):
        centred[i, : len(c)] = c
    r = len(pools)
    observed = float(centred[:, 0].sum()) / r
    # Sums of the same terms in another order differ by rounding: compare with a tolerance.
    tol = 1e-9 * max(1.0, float(np.abs(centred).max(axis=1).sum()) / r)
    log_total = float(np.log(sizes).sum())
    if log_total <= np.log(n_resamples) + 1e-9:
        total = int(np.prod(sizes))
        codes = np.arange(total)
        stat = np.zeros(total)
        for i in range(r):  # mixed-radix digits enumerate every assignment once
            stat += centred[i, codes % sizes[i]]
            codes //= sizes[i]
        stat /= r
        return TestResult(observed, float(np.mean(stat >= observed - tol)))
    rng = rng if rng is not None else np.random.default_rng()
    stat = np.zeros(n_resamples)
    for i in range(r):
        stat += centred[i, rng.integers(0, sizes[i], size=n_resamples)]
    stat /= r
    return TestResult(observed, float((1 + np.sum(stat >= observed - tol)) / (1 + n_resamples)))


def exchangeability_tail_bound(pools: Sequence[Sequence[float]]) -> float:
    """Hoeffding's bound on the exact p-value of ``pooled_exchangeability_test`` (no Monte Carlo).

    Under the null each shard's term is a uniform draw from its centred pool: independent,
    mean 0, within [min, max] of the pool. So P(T* ≥ t) ≤ exp(−2 r² t² / Σ (max_i − min_i)²) for
    t > 0 (T the mean over r shards). It is never below the exact p, hence a valid p-value that
    can be as small as the data warrant, where a Monte-Carlo p stops at 1/(1 + resamples).
    """
    rows = _centred_pools(pools)
    r = len(rows)
    observed = sum(float(c[0]) for c in rows) / r
    spread = sum(float(c.max() - c.min()) ** 2 for c in rows)
    if observed <= 0 or spread == 0:
        return 1.0
    return float(min(1.0, np.exp(-2.0 * r * r * observed * observed / spread)))


def mann_whitney_greater(candidates: Sequence[float], reference: Sequence[float]) -> tuple[TestResult, float]:
    """Mann-Whitney U of candidates > reference (one-sided, tie-corrected) and the AUROC = U/(n·m)."""
    x = np.asarray(candidates, dtype=float)
    y = np.asarray(reference, dtype=float)
    res = st.mannwhitneyu(x, y, alternative="greater", method="asymptotic" if len(x) * len(y) > 2500 else "auto")
    auroc = float(res.statistic) / (len(x) * len(y))
    return TestResult(float(res.statistic), float(res.pvalue)), auroc


def mcnemar_greater(only_first: int, only_second: int) -> TestResult:
    """Exact one-sided McNemar: of the discordant pairs, are more right only in the first condition?

    Under the null each discordant pair is a fair coin; p = P(Binom(b+c, ½) ≥ b).
    """
    n = only_first + only_second
    if n == 0:
        return TestResult(0.0, 1.0)
    return TestResult(float(only_first - only_second), float(st.binom.sf(only_first - 1, n, 0.5)))


def fisher_greater(hits_a: int, n_a: int, hits_b: int, n_b: int) -> TestResult:
    """Fisher's exact test that the rate in A exceeds the rate in B (odds ratio as statistic)."""
    table = [[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]]
    res = st.fisher_exact(table, alternative="greater")
    return TestResult(float(res.statistic), float(res.pvalue))


def wilcoxon_greater(diffs: Sequence[float]) -> TestResult:
    """Wilcoxon signed-rank test of median difference > 0 (zeros dropped); p = 1 if all are zero."""
    d = np.asarray(diffs, dtype=float)
    if not np.any(d != 0):
        return TestResult(0.0, 1.0)
    res = st.wilcoxon(d, alternative="greater", zero_method="wilcox")
    return TestResult(float(res.statistic), float(res.pvalue))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def diff_ci_unpaired(hits_a: int, n_a: int, hits_b: int, n_b: int) -> tuple[float, float, float]:
    """Difference of two proportions with Newcombe's hybrid score interval (method 10)."""
    pa, pb = hits_a / n_a, hits_b / n_b
    la, ua = wilson(hits_a, n_a)
    lb, ub = wilson(hits_b, n_b)
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return d, low, high


def diff_ci_paired(first: Sequence[int], second: Sequence[int]) -> tuple[float, float, float]:
    """Mean paired difference of 0/1 outcomes with a normal interval on the per-item differences."""
    d = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
    return mean, mean - Z95 * se, mean + Z95 * se


def wilson(hits: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased whitespace words (the LCS-based score of Lin 2004, β = 1)."""
    c, r = candidate.lower().split(), reference.lower().split()
    if not c or not r:
        return 0.0
    # LCS by dynamic programming over the shorter sequence (O(len(c)·len(r)), items are short).
    prev = [0] * (len(r) + 1)
    for cw in c:
        cur = [0]
        for j, rw in enumerate(r):
            cur.append(prev[j] + 1 if cw == rw else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)
