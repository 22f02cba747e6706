"""Ranks with ties: a model's rank is 1 + the number of models clearly better than it.

This is Chatbot Arena's rule (Chiang et al. 2024, "ranking" in the leaderboard notebook): two
models whose difference is not significant share a rank, and a rank only moves when the evidence
does. Ranks therefore need not be consecutive (1, 1, 3) and a table sorted by score can show
a lower-scored model with the same rank as the one above it.

Three ways to decide "significantly better":

* ``paired`` — the caller has per-item scores and supplies a matrix from paired tests (most
  powerful; what ``gapmeter compare`` uses);
* ``z`` — independent scores with standard errors: ``|v_j - v_i| / sqrt(se_i² + se_j²) > z``;
* ``ci_overlap`` — Arena's display rule: j beats i when j's CI lower bound exceeds i's upper
  bound (conservative: for equal SEs it is a test at alpha ≈ 0.006 instead of 0.05).

The first two are *significance ranks* (what ``compare`` and ``profile`` print). The third is the
*display rank*: the one rule for a table that shows intervals, here and on the board. It is
defined once, on intervals (:func:`clearly_better`, :func:`ci_overlap_ranks`), because stored
bootstrap CIs of F1/BLEU-like metrics are asymmetric; ``rank_with_ties(method="ci_overlap")``
applies it to the symmetric intervals ``value ± z·se``.

No multiplicity correction is applied, as in Arena: a rank is a summary, not a claim; use
``gapmeter compare`` (Holm across tasks) for claims.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gapmeter.compare.power import critical_z

__all__ = [
    "Interval", "RankMethod", "Ranked", "Score", "ci_overlap_ranks", "clearly_better", "rank_with_ties",
    "ranks_from_matrix",
]

RankMethod = Literal["z", "ci_overlap"]


@dataclass(frozen=True)
class Score:
    name: str
    value: float
    stderr: float | None
    n: int | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class Ranked:
    score: Score
    rank: int
    better: tuple[str, ...]  # names of the models significantly better than this one


@dataclass(frozen=True)
class Interval:
    """A score and its confidence interval, oriented so that higher is better."""

    value: float
    low: float
    high: float


#: What a score without a usable error bar counts as: it beats nobody and nobody beats it.
UNBOUNDED = (-math.inf, math.inf)


def clearly_better(j: Interval, i: Interval) -> bool:
    """The display rule: j's interval lies entirely above i's (overlapping intervals tie)."""
    return j.low > i.high


def ci_overlap_ranks(intervals: Sequence[Interval | None]) -> list[int | None]:
    """1 + #models :func:`clearly_better` than this one (None: no score, not ranked, pushes no one).

    O(n log n), for large boards: the count of lows strictly above this model's high.
    """
    lows = sorted(iv.low for iv in intervals if iv is not None)
    out: list[int | None] = []
    for iv in intervals:
        if iv is None:
            out.append(None)
            continue
        out.append(1 + len(lows) - bisect.bisect_right(lows, iv.high))
    return out


def ranks_from_matrix(significantly_better: Sequence[Sequence[bool]]) -> list[int]:
    """``m[j][i]`` true when model j is significantly better than model i → ranks."""
    k = len(significantly_better)
    for row in significantly_better:
        if len(row) != k:
            raise ValueError("the significance matrix must be square")
    return [1 + sum(bool(significantly_better[j][i]) for j in range(k) if j != i) for i in range(k)]


def _interval(s: Score, z: float) -> Interval:
    """``s`` as ``value ± z·se``, oriented higher-is-better (no usable SE: unbounded)."""
    value = s.value if s.higher_is_better else -s.value
    se = s.stderr
    if se is None or not (math.isfinite(se) and math.isfinite(value)):
        return Interval(value, *UNBOUNDED)  # no error bar, no claim either way
    return Interval(value, value - z * se, value + z * se)


def _beats(j: Score, i: Score, z: float, method: RankMethod) -> bool:
    if method == "ci_overlap":
        return clearly_better(_interval(j, z), _interval(i, z))
    sign = 1.0 if i.higher_is_better else -1.0
    gap = sign * (j.value - i.value)
    if gap <= 0 or not math.isfinite(gap):
        return False
    se_i, se_j = i.stderr, j.stderr
    if se_i is None or se_j is None or not (math.isfinite(se_i) and math.isfinite(se_j)):
        return False  # no error bar, no claim
    se = math.sqrt(se_i**2 + se_j**2)
    return se == 0 or gap / se > z


def rank_with_ties(
    scores: Sequence[Score], *, alpha: float = 0.05, method: RankMethod = "z"
) -> list[Ranked]:
    """Rank independent scores (one per model, same metric) with ties; input order is kept."""
    if len({s.higher_is_better for s in scores}) > 1:
        raise ValueError("all scores must share the metric direction")
    z = critical_z(alpha)
    out = []
    for i, si in enumerate(scores):
        better = tuple(sj.name for j, sj in enumerate(scores) if j != i and _beats(sj, si, z, method))
        out.append(Ranked(si, 1 + len(better), better))
    return out
