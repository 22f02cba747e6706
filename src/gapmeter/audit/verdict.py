"""From detector p-values to a verdict per (model, task), and the inflation estimate.

Holm's step-down correction runs over every p-value of the audit (all tasks × detectors that
ran), so the family-wise false-positive rate of "contaminated" is at most alpha per audit, as
long as each detector's own test is valid (the self-test measures that). Verdicts:

* contaminated: some detector whose calibration check did not fail for the setting in use has a
  Holm-adjusted p < alpha;
* suspicious: none survives the correction, but some uncorrected p < alpha; or the only
  detectors that survive it failed their calibration check for this setting (their
  ``details["calibration"]`` says ``failed`` and why): a test known to reject true nulls more
  often than alpha cannot carry "contaminated" on its own;
* clean: detectors ran and none has p < alpha (absence of evidence, at their measured power);
* untested: no detector could run (each skipped detector says why).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gapmeter.audit.config import AuditConfig
from gapmeter.audit.result import DetectorResult, Inflation, TaskAudit
from gapmeter.audit.stats import Z95, diff_ci_unpaired, holm

NOT_ADJUSTED = "not difficulty-adjusted (no --baseline_model): "


def apply_holm(results: list[DetectorResult]) -> None:
    ran = [(r, r.p_value) for r in results if r.ran and r.p_value is not None]  # ran: has a p-value
    for (r, _), p in zip(ran, holm([float(pv) for _, pv in ran]), strict=True):
        r.p_holm = p


def verdict(results: list[DetectorResult], alpha: float) -> tuple[str, str]:
    ran = [r for r in results if r.ran]
    if not ran:
        return "untested", "no detector could run: " + "; ".join(f"{r.detector}: {r.skipped}" for r in results)
    strong = [r for r in ran if r.p_holm is not None and r.p_holm < alpha]
    calibrated = [r for r in strong if not miscalibrated(r)]
    if calibrated:
        names = ", ".join(f"{r.detector} (p_holm={r.p_holm:.2g})" for r in calibrated)
        return "contaminated", f"significant after Holm correction: {names}"
    if strong:
        names = "; ".join(
            f"{r.detector} (p_holm={r.p_holm:.2g}) is significant after Holm correction, but its calibration "
            f"check failed for this setting: {r.details['calibration'].get('reason', 'no reason recorded')}"
            for r in strong
        )
        return "suspicious", f"{names}; not enough on its own for contaminated"
    weak = [r for r in ran if r.p_value is not None and r.p_value < alpha]
    if weak:
        names = ", ".join(f"{r.detector} (p={r.p_value:.2g})" for r in weak)
        return "suspicious", f"p < {alpha} before but not after Holm correction: {names}"
    return "clean", f"{len(ran)} detector(s) ran, none with p < {alpha}"


def miscalibrated(result: DetectorResult) -> bool:
    """True when the detector's calibration check failed for the setting it ran in."""
    cal = result.details.get("calibration")
    return isinstance(cal, dict) and cal.get("status") == "failed"


def inflation_from_reference(candidate: list[float], reference: list[float]) -> Inflation:
    """Public score minus the score on unseen equivalent items (unpaired, 95% CI)."""
    a, b = np.asarray(candidate), np.asarray(reference)
    binary = set(np.unique(a)) <= {0.0, 1.0} and set(np.unique(b)) <= {0.0, 1.0}
    if binary:
        d, low, high = diff_ci_unpaired(int(a.sum()), len(a), int(b.sum()), len(b))
    else:
        d = float(a.mean() - b.mean())
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        low, high = d - Z95 * se, d + Z95 * se
    return Inflation(d, low, high, float(a.mean()), float(b.mean()), "reference", len(a), len(b),
                     method=NOT_ADJUSTED + "public − reference items, " + ("Newcombe" if binary else "normal") + " 95% CI")


def inflation_from_perturbation(result: DetectorResult) -> Inflation | None:
    if not result.ran or "gap_ci95" not in result.details:
        return None
    low, high = result.details["gap_ci95"]
    return Inflation(
        float(result.effect or 0.0), float(low), float(high),
        float(result.details["acc_original"]), float(result.details["acc_perturbed"]),
        "perturbation", result.n, result.n,
        method=NOT_ADJUSTED + "original − perturbed items, paired 95% CI",
    )


def conclude(
    task: str, results: list[DetectorResult], inflation: Inflation | None, config: AuditConfig,
    items: list[dict[str, Any]] | None = None, clean_items_score: dict[str, Any] | None = None,
) -> TaskAudit:
    v, reason = verdict(results, config.alpha)
    return TaskAudit(task, v, reason, results, inflation, items or [], clean_items_score)
