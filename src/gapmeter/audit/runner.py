"""Running the audit: every detector on every task, then Holm, verdicts and inflation.

``audit_tasks`` is what ``gapmeter audit`` and the self-test both call, so the self-test measures
exactly the code a user runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gapmeter.audit.adjusted import BaselineScores, adjusted_inflation
from gapmeter.audit.base import AuditContext, Detector
from gapmeter.audit.config import AuditConfig
from gapmeter.audit.items import AuditSet
from gapmeter.audit.kernels import fused_activations
from gapmeter.audit.membership import item_rows
from gapmeter.audit.mink import MinKPlusPlus, MinKProb
from gapmeter.audit.oren import OrenExchangeability
from gapmeter.audit.perturbation import PerturbationGap
from gapmeter.audit.progress import Meter
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.result import DetectorResult, Inflation, TaskAudit
from gapmeter.audit.time_travel import TimeTravel
from gapmeter.audit.tokens import backend_capabilities, token_scorer_for
from gapmeter.audit.ts_guessing import TSGuessing
from gapmeter.audit.verdict import (
    apply_holm,
    conclude,
    inflation_from_perturbation,
    inflation_from_reference,
)
from gapmeter.errors import ConfigError

DETECTORS: dict[str, type[Detector]] = {
    d.name: d
    for d in (OrenExchangeability, MinKProb, MinKPlusPlus, PerturbationGap, TSGuessing, TimeTravel)
}


def select_detectors(names: str | Sequence[str] | None) -> list[Detector]:
    if names is None or names == "all" or names == ["all"]:
        return [cls() for cls in DETECTORS.values()]
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in wanted if n not in DETECTORS]
    if unknown:
        raise ConfigError(f"--detectors: unknown detector {unknown[0]!r}; available: {', '.join(DETECTORS)}")
    return [DETECTORS[n]() for n in wanted]


@dataclass
class AuditPair:
    candidate: AuditSet
    reference: AuditSet | None


def audit_tasks(
    backend: object,
    pairs: Sequence[AuditPair],
    *,
    config: AuditConfig,
    runner: RequestRunner,
    detectors: Sequence[Detector] | None = None,
    progress: Callable[[str], None] | None = None,
    meter: Meter | None = None,
) -> list[TaskAudit]:
    detectors = list(detectors) if detectors is not None else select_detectors(None)
    caps = backend_capabilities(backend)
    scorer = token_scorer_for(backend) if "token_logprobs" in caps else None
    if meter is not None:
        runner.meter = meter
    per_task: list[tuple[AuditPair, list[DetectorResult], AuditContext, list[dict[str, Any]], dict[str, Any] | None]] = []
    # The fused GELU kernel is the same function to float rounding (audit/kernels.py).
    with fused_activations(backend):
        for pair in pairs:
            ctx = AuditContext(backend, runner, caps, scorer, pair.candidate, pair.reference, config)
            results = []
            for det in detectors:
                if progress:
                    progress(f"{pair.candidate.name}: {det.name}")
                if meter is not None:
                    meter.begin(f"{pair.candidate.name}: {det.name}")
                results.append(det.run(ctx))
            if meter is not None:
                meter.begin(f"{pair.candidate.name}: per-item scores")
            per_task.append((pair, results, ctx, *item_rows(ctx)))
    if config.holm:
        apply_holm([r for _, rs, *_ in per_task for r in rs])
    else:
        for _, rs, *_ in per_task:
            for r in rs:
                r.p_holm = r.p_value
    audits = []
    for pair, results, ctx, rows, clean in per_task:
        audits.append(conclude(pair.candidate.name, results, estimate_inflation(ctx, results), config, rows, clean))
    return audits


def adjust_for_difficulty(audit: TaskAudit, baselines: Sequence[BaselineScores], *, seed: int) -> None:
    """Replace the task's reference-based inflation with the baseline-adjusted one (in place)."""
    public, reference = audit.scores("test"), audit.scores("reference")
    if not reference:
        return
    audit.inflation = adjusted_inflation(public, reference, baselines, seed=seed)


def estimate_inflation(ctx: AuditContext, results: list[DetectorResult]) -> Inflation | None:
    """Reference items when there are any (unseen equivalents), else the perturbed items."""
    if ctx.reference is not None:
        return inflation_from_reference(ctx.scores("candidate"), ctx.scores("reference"))
    for r in results:
        if r.detector == PerturbationGap.name:
            return inflation_from_perturbation(r)
    return None
