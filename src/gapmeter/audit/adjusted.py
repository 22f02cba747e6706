"""Difficulty-adjusted inflation: separate contamination from a reference set of another difficulty.

"Public − reference" of the audited model mixes two things: what contamination added on the
public items, and how much easier (or harder) the public items are than the reference items.
Models believed clean (``--baseline_model``), scored on the *same* items, measure the second
part, as ConStat (Dekoninck et al. 2024) does with its reference models:

* one or two baselines: the difficulty gap is their mean (public − reference) difference, so
  inflation = (t₀ − r₀) − mean_j (t_j − r_j). Assumes the gap is the same for every model
  (additive on the accuracy scale), which two points cannot test;
* three or more: ConStat's idea with a straight line instead of its monotone spline (a spline
  through 3-5 points overfits): least squares t_j = a + b·r_j across the baselines, the audited
  model's expected public score is a + b·r₀, inflation = t₀ − (a + b·r₀). Allows the gap to
  grow or shrink with skill; extrapolating far outside the baselines' range is the risk.

The 95% interval is a percentile bootstrap over *items*: every round resamples the public items
and, separately, the reference items, with the same draw for the audited model and every
baseline (their per-item results are paired), so the baselines' own sampling noise is in the
interval. Models are not resampled (a handful of baselines makes that degenerate, unlike
ConStat's 20+).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gapmeter.audit.result import Inflation

BOOTSTRAP_ROUNDS = 2000
LINE_FIT_MIN_BASELINES = 3


@dataclass(frozen=True)
class BaselineScores:
    """A model believed clean: its per-item scores on the public and reference items."""

    name: str
    public: Sequence[float]
    reference: Sequence[float]


def _inflation(t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Inflation from mean scores: ``t``/``r`` are [models, rounds], row 0 the audited model."""
    t0, r0, tb, rb = t[0], r[0], t[1:], r[1:]
    if len(tb) < LINE_FIT_MIN_BASELINES:
        return (t0 - r0) - (tb - rb).mean(axis=0)
    rm, tm = rb.mean(axis=0), tb.mean(axis=0)
    var = ((rb - rm) ** 2).sum(axis=0)
    cov = ((rb - rm) * (tb - tm)).sum(axis=0)
    # baselines of identical reference score carry no slope: fall back to the mean gap (b = 1)
    slope = np.where(var > 1e-12, cov / np.where(var > 1e-12, var, 1.0), 1.0)
    predicted = tm + slope * (r0 - rm)
    return t0 - predicted


def adjusted_inflation(
    public: Sequence[float], reference: Sequence[float], baselines: Sequence[BaselineScores],
    *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0,
) -> Inflation:
    if not baselines:
        raise ValueError("the difficulty adjustment needs at least one baseline model")
    t = np.asarray([public, *[b.public for b in baselines]], dtype=float)
    r = np.asarray([reference, *[b.reference for b in baselines]], dtype=float)
    n, m = t.shape[1], r.shape[1]
    estimate = float(_inflation(t.mean(axis=1, keepdims=True), r.mean(axis=1, keepdims=True))[0])
    rng = np.random.default_rng(seed)
    # multinomial counts = a resample with replacement; one matrix product gives every model's mean
    ct = rng.multinomial(n, np.full(n, 1.0 / n), size=rounds).T / n  # [n, rounds]
    cr = rng.multinomial(m, np.full(m, 1.0 / m), size=rounds).T / m
    boot = _inflation(t @ ct, r @ cr)
    low, high = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    method = "mean baseline gap" if len(baselines) < LINE_FIT_MIN_BASELINES else "line fit over baselines"
    return Inflation(
        estimate, low, high, float(t[0].mean()), float(r[0].mean()), "adjusted", n, m,
        difficulty_adjusted=True,
        unadjusted_estimate=float(t[0].mean() - r[0].mean()),
        method=f"{method}, percentile bootstrap over items ({rounds} rounds)",
        baselines=[
            {"model": b.name, "public_score": float(np.mean(b.public)), "reference_score": float(np.mean(b.reference))}
            for b in baselines
        ],
    )
