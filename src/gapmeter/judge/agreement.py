"""How far to trust a judge: its agreement with human labels on the items that carry one.

Accuracy (share of identical labels) and Cohen's κ (agreement beyond what the two label
frequencies give by chance; quadratic weights for ordinal 1–10 scores), each with a seeded
percentile bootstrap CI over items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gapmeter.compare.bootstrap import bootstrap_ci

_TRUE = {"1", "pass", "yes", "true", "correct", "good", "ok", "acceptable", "y"}
_FALSE = {"0", "fail", "no", "false", "incorrect", "bad", "wrong", "unacceptable", "n"}


def human_value(label: Any, scale: str) -> float | None:
    """A human label on the judge's scale: 1.0/0.0 for pass/fail, a number 1–10 for scores."""
    text = str(label).strip().lower()
    if scale == "pass_fail":
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 1.0 <= value <= 10.0 else None


def cohen_kappa(a: Sequence[float], b: Sequence[float], *, weights: str | None = None) -> float:
    """Cohen's κ of two raters over the same items (``weights="quadratic"`` for ordinal labels).

    Quadratic weights use the scores' own distances, ``(x - y)² / (max - min)²``, so a level
    neither rater used does not bring its neighbours closer (scikit-learn uses the distance of the
    levels' ranks: the same when every level in the range occurs). NaN when chance agreement is
    total (both raters always gave one and the same label).
    """
    cats = sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    observed = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        observed[index[x], index[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    if weights == "quadratic" and k > 1:
        values = np.asarray(cats, dtype=float)
        w = (values[:, None] - values[None, :]) ** 2 / (values.max() - values.min()) ** 2
    else:
        w = 1.0 - np.eye(k)
    disagreement_expected = float((w * expected).sum())
    if disagreement_expected == 0.0:
        return float("nan")
    return 1.0 - float((w * observed).sum()) / disagreement_expected


def agreement(judge: Sequence[float], human: Sequence[float], *, scale: str, iters: int = 2000) -> dict[str, Any]:
    """``{n, accuracy, accuracy_ci95, kappa, kappa_ci95, kappa_weights}`` over paired labels."""
    n = len(judge)
    out: dict[str, Any] = {"n": n, "kappa_weights": "quadratic" if scale == "1-10" else None}
    if n == 0:
        return out
    pairs = list(zip(judge, human, strict=True))
    weights = out["kappa_weights"]

    def acc(items: list[tuple[float, float]]) -> float:
        return float(np.mean([x == y for x, y in items]))

    def kappa(items: list[tuple[float, float]]) -> float:
        return cohen_kappa([x for x, _ in items], [y for _, y in items], weights=weights)

    out["accuracy"] = acc(pairs)
    out["kappa"] = kappa(pairs)
    if n >= 2:
        lo, hi, _ = bootstrap_ci(acc, pairs, iters=iters)
        out["accuracy_ci95"] = [lo, hi]
        lo, hi, _ = bootstrap_ci(kappa, pairs, iters=iters)
        out["kappa_ci95"] = [lo, hi]
    return out
