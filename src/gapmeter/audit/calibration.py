"""Measured calibration of the audit's tests, per setting, as the verdict uses it.

A detector whose false-positive rate on true nulls is above its nominal α for the setting in use
cannot carry a "contaminated" verdict on its own (verdict.py). The numbers below come from
``gapmeter selftest oren`` (random orders of real benchmark items tested as if canonical: a true
null on any model); docs/audit.md has the full table and the command that produced it. A check
passes when the rejection rate at α = 0.05 lies in [3%, 6%] (issue 20's criterion) or when its
upper 95% bound does not exceed 6%.
"""

from __future__ import annotations

import math
from typing import Any

#: (test, items per shard) -> (rejections, nulls, rate) at α = 0.05, from the reported check.
OREN_MEASURED: dict[tuple[str, int], tuple[int, int]] = {}

#: Where the measured numbers come from (shown in the verdict's reason).
OREN_SOURCE = "gapmeter selftest oren (docs/audit.md)"

PASS_HIGH = 0.06


def _nearest(sizes: list[int], size: int) -> int:
    return min(sizes, key=lambda s: (abs(math.log(s) - math.log(size)), s))


def oren_calibration(test: str, items_per_shard: list[int]) -> dict[str, Any]:
    """``{"status": passed|failed|unchecked, "reason": ...}`` for Oren's test at these shard sizes."""
    from gapmeter.audit.stats import wilson

    measured = sorted(k for t, k in OREN_MEASURED if t == test)
    if not measured:
        if test == "randomization":
            return {"status": "passed", "reason": "randomization test: exact under exchangeability by construction"}
        return {"status": "unchecked", "reason": f"no calibration check recorded for the {test} test"}
    worst: dict[str, Any] | None = None
    for size in items_per_shard:
        k = _nearest(measured, size)
        hits, n = OREN_MEASURED[(test, k)]
        low, high = wilson(hits, n)
        entry = {"items_per_shard": k, "rate": hits / n, "ci95": (low, high), "nulls": n}
        if worst is None or entry["rate"] > worst["rate"]:
            worst = entry
    assert worst is not None
    rate, (low, high) = worst["rate"], worst["ci95"]
    ok = rate <= PASS_HIGH or high <= PASS_HIGH
    status = "passed" if ok else "failed"
    reason = (
        f"{test} test with {worst['items_per_shard']}-item shards rejected {100 * rate:.1f}% of "
        f"{worst['nulls']} true nulls at α = 0.05 (95% CI {100 * low:.1f}–{100 * high:.1f}%; {OREN_SOURCE})"
    )
    return {"status": status, "reason": reason, **worst}
