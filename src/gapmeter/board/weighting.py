"""The board's user-weighted re-ranking across quality, cost and speed (not a rank with ties).

The board's rank column is the display rank of :mod:`gapmeter.compare.ranking`
(``ci_overlap_ranks``: 1 + the number of models whose 95% CI lies entirely above this one's), on
the intervals as stored; this module only orders models by a composite the user weights.

Weighted re-ranking follows Dynabench's Dynaboard: each dimension is scaled to [0, 1] across the
models shown (min-max; lower-is-better dimensions are flipped), and the composite is the
weight-normalised sum. A model without a value on a weighted dimension gets that dimension's
worst score (0), so missing data never helps a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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
