"""Ranks that respect uncertainty, and the user-weighted re-ranking across dimensions.

Tie-aware rank (as Chatbot Arena and HELM report it): a model's rank is 1 + the number of
models that are *clearly* better, i.e. whose 95% CI lies entirely above this model's CI. Models
whose intervals overlap share ranks. This is ``gapmeter.compare.ranking``'s ``ci_overlap`` rule
(the display rule), applied to the intervals as stored — bootstrap CIs of F1/BLEU-like metrics
are asymmetric, so it takes intervals, not standard errors — in O(n log n) for large boards;
tests/board/test_ranking.py checks that both give the same ranks. ``compare`` ranks runs with
paired tests or z (its ``rank_with_ties``): that is a test, this is a summary.

Weighted re-ranking follows Dynabench's Dynaboard: each dimension is scaled to [0, 1] across the
models shown (min-max; lower-is-better dimensions are flipped), and the composite is the
weight-normalised sum. A model without a value on a weighted dimension gets that dimension's
worst score (0), so missing data never helps a model.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def ci_overlap_ranks(intervals: Sequence[Interval | None]) -> list[int | None]:
    """1 + #models whose CI low bound is above this model's CI high bound (None for no score)."""
    lows = sorted(iv.low for iv in intervals if iv is not None)
    out: list[int | None] = []
    for iv in intervals:
        if iv is None:
            out.append(None)
            continue
        clearly_better = len(lows) - bisect.bisect_right(lows, iv.high)
        out.append(1 + clearly_better)
    return out


def minmax(values: Sequence[float | None], *, lower_is_better: bool) -> list[float]:
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return [0.0 for _ in values]
    lo, hi = min(present), max(present)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(0.0)
        elif hi == lo:
            out.append(1.0)
        else:
            x = (v - lo) / (hi - lo)
            out.append(1.0 - x if lower_is_better else x)
    return out


@dataclass(frozen=True)
class Weights:
    quality: float = 1.0
    cost: float = 0.0
    speed: float = 0.0

    @property
    def is_quality_only(self) -> bool:
        return self.cost == 0 and self.speed == 0

    def normalised(self) -> Weights:
        total = self.quality + self.cost + self.speed
        if total <= 0:
            return Weights(1.0, 0.0, 0.0)
        return Weights(self.quality / total, self.cost / total, self.speed / total)


def weighted_scores(
    quality: Sequence[float | None],
    cost: Sequence[float | None],
    latency: Sequence[float | None],
    weights: Weights,
) -> list[float]:
    w = weights.normalised()
    q = minmax(quality, lower_is_better=False)
    c = minmax(cost, lower_is_better=True)
    s = minmax(latency, lower_is_better=True)
    return [w.quality * a + w.cost * b + w.speed * d for a, b, d in zip(q, c, s, strict=True)]
