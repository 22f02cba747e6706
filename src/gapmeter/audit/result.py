"""What a detector returns, and what the audit concludes per (model, task)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DetectorResult:
    """One detector on one task: a one-sided test of "the model has seen these items".

    ``skipped`` carries the reason when the detector could not run (the backend lacks a
    capability, there is no reference set, the prompt does not show the options...); then
    statistic, p_value and effect are None.
    """

    detector: str
    task: str
    needs: list[str]
    statistic: float | None = None
    p_value: float | None = None
    effect: float | None = None
    effect_name: str = ""
    n: int = 0
    n_reference: int | None = None
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    p_holm: float | None = None

    @property
    def ran(self) -> bool:
        return self.skipped is None and self.p_value is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Inflation:
    """Public score minus the score on equivalents the model cannot have seen, with a 95% CI."""

    estimate: float
    ci_low: float
    ci_high: float
    public_score: float
    equivalent_score: float
    # "reference" (fresh/held-out items), "perturbation" (same items, perturbed), or "adjusted"
    # (reference items, difficulty gap predicted from baseline models: audit/adjusted.py)
    source: str
    n: int
    n_equivalent: int
    # False: public − equivalent, which also contains any difficulty gap between the two sets
    difficulty_adjusted: bool = False
    unadjusted_estimate: float | None = None
    method: str = ""
    baselines: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TaskAudit:
    task: str
    verdict: str  # clean | suspicious | contaminated
    reason: str
    detectors: list[DetectorResult]
    inflation: Inflation | None
    # per item (public and reference): score, detector scores, membership probability
    # (audit/membership.py); and the public score restricted to the likely-unseen items
    items: list[dict[str, Any]] = field(default_factory=list)
    clean_items_score: dict[str, Any] | None = None

    def scores(self, which: str) -> list[float]:
        """The audited model's per-item scores of the public ("test") or "reference" items."""
        return [float(row["score"]) for row in self.items if row["set"] == which]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "verdict": self.verdict,
            "reason": self.reason,
            "detectors": [d.to_json() for d in self.detectors],
            "inflation": self.inflation.to_json() if self.inflation else None,
            "clean_items_score": self.clean_items_score,
            "items": self.items,
        }
