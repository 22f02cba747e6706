"""Measured calibration of the audit's tests, per setting, as the verdict uses it.

A detector whose false-positive rate on true nulls is above its nominal α for the setting in use
cannot carry a "contaminated" verdict on its own (verdict.py). The numbers below come from
``gapmeter selftest contamination --preset oren`` (random orders of real benchmark items tested
as if canonical: a true null on any model); docs/audit.md has the full table and the command
that produced it. A check fails when the rejection rate at α = 0.05 is above 6% (issue 20's
band is [3%, 6%]; a conservative test is no false-positive risk).
"""

from __future__ import annotations

import math
from typing import Any

#: (test, items per shard) -> (rate, 95% low, 95% high, nulls) at α = 0.05, from the reported
#: check (the interval is Clopper-Pearson on the design-effect-adjusted count of nulls).
#: Worst cell per shard size (20 and 100 items give 2-item shards; 137 items mixes 2 and 3).
OREN_MEASURED: dict[tuple[str, int], tuple[float, float, float, int]] = {
    ("randomization", 2): (0.054, 0.0401, 0.0719, 1000),
    ("randomization", 3): (0.051, 0.0371, 0.067, 1000),
    ("randomization", 5): (0.044, 0.028, 0.0639, 1000),
    ("randomization", 10): (0.053, 0.0399, 0.0688, 1000),
    ("randomization", 40): (0.039, 0.0279, 0.0529, 1000),
    ("t", 2): (0.055, 0.0415, 0.0713, 1000),
    ("t", 3): (0.055, 0.0417, 0.071, 1000),
    ("t", 5): (0.039, 0.0279, 0.0529, 1000),
    ("t", 10): (0.052, 0.0391, 0.0676, 1000),
    ("t", 40): (0.046, 0.0339, 0.0609, 1000),
}

#: Where the measured numbers come from (shown in the verdict's reason).
OREN_SOURCE = "gapmeter selftest contamination --preset oren, docs/audit.md"

#: Over-rejection beyond this rate at α = 0.05 fails the check (issue 20's band is [3%, 6%];
#: a conservative test is no false-positive risk, so only the upper edge fails it).
FAIL_ABOVE = 0.06


def _nearest(sizes: list[int], size: int) -> int:
    return min(sizes, key=lambda s: (abs(math.log(s) - math.log(size)), s))


def oren_calibration(test: str, items_per_shard: list[int]) -> dict[str, Any]:
    """``{"status": passed|failed|unchecked, "reason": ...}`` for Oren's test at these shard sizes.

    Shard sizes not in the check take the nearest measured size (log scale); the worst of the
    sizes in use decides.
    """
    measured = sorted(k for t, k in OREN_MEASURED if t == test)
    if not measured:
        if test == "randomization":
            return {"status": "passed", "reason": "randomization test: exact under exchangeability by construction"}
        return {"status": "unchecked", "reason": f"no calibration check recorded for the {test} test"}
    worst: dict[str, Any] | None = None
    for size in items_per_shard:
        k = _nearest(measured, size)
        rate, low, high, n = OREN_MEASURED[(test, k)]
        entry = {"items_per_shard": k, "rate": rate, "ci95": (low, high), "nulls": n}
        if worst is None or rate > worst["rate"]:
            worst = entry
    assert worst is not None
    rate, (low, high) = worst["rate"], worst["ci95"]
    status = "failed" if rate > FAIL_ABOVE else "passed"
    reason = (
        f"{test} test with {worst['items_per_shard']}-item shards rejected {100 * rate:.1f}% of "
        f"{worst['nulls']} true nulls at α = 0.05 (95% CI {100 * low:.1f}–{100 * high:.1f}%; {OREN_SOURCE})"
    )
    return {"status": status, "reason": reason, **worst}
