"""Cost, speed and audit for the board, read from whatever of them the store holds.

The efficiency tables (``efficiency``, ``request_timings``) and the audit tables
(``audit_verdicts``, ``audit_results``) are imported lazily and read defensively: a store without
them, or without rows for a run, yields empty values, so every page works with partial data. Without efficiency records the board still shows the run's wall-clock time per 1k items
(clearly labelled: it includes model loading and is not a latency).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gapmeter.board.runinfo import RunInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Efficiency:
    cost_per_1k: float | None = None  # USD per 1,000 items
    latency_p50: float | None = None  # seconds per request
    latency_p95: float | None = None
    wall_s_per_1k: float | None = None  # the run's wall clock per 1,000 items (fallback)
    run_id: str | None = None
    source: str = ""

    @property
    def speed(self) -> float | None:
        """Lower is better: latency p50 where measured, else wall time per 1k items."""
        return self.latency_p50 if self.latency_p50 is not None else self.wall_s_per_1k

    def as_json(self) -> dict[str, Any]:
        return {
            "cost_per_1k_items_usd": self.cost_per_1k, "latency_p50_s": self.latency_p50,
            "latency_p95_s": self.latency_p95, "wall_seconds_per_1k_items": self.wall_s_per_1k,
            "run_id": self.run_id, "source": self.source,
        }


@dataclass(frozen=True)
class AuditFlag:
    task: str
    verdict: str  # e.g. "contaminated", "suspicious", "clean"
    p_value: float | None = None
    effect: float | None = None
    run_id: str | None = None
    audit_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.verdict in ("suspicious", "contaminated")

    def as_json(self) -> dict[str, Any]:
        return {"task": self.task, "verdict": self.verdict, "p_value": self.p_value, "effect": self.effect,
                "run_id": self.run_id, "audit_id": self.audit_id, "detail": self.detail}


def load_efficiency(session: Session, runs: dict[str, RunInfo]) -> dict[str, Efficiency]:
    """Per run: cost and latency from the efficiency subsystem's rows when present (p95 from the
    request timings measured during the run), else only the run's wall clock per 1k items."""
    out: dict[str, Efficiency] = {}
    for rid, run in runs.items():
        n = run.n_items
        if run.wall_seconds and n:
            out[rid] = Efficiency(wall_s_per_1k=run.wall_seconds / n * 1000, run_id=rid, source="run wall clock")
    try:
        from gapmeter.store.models import EfficiencyValue, RequestTiming
    except ImportError:  # no efficiency subsystem in this installation
        return out
    try:
        rows = session.execute(
            select(EfficiencyValue.run_id, EfficiencyValue.cost_per_1k_items, EfficiencyValue.latency_p50,
                   EfficiencyValue.latency_p90).where(EfficiencyValue.scope == "run")
        ).all()
    except SQLAlchemyError:  # a store without the table
        session.rollback()
        return out
    for r in rows:
        run = runs.get(r.run_id)
        if run is None:
            continue
        p95 = _p95(session, RequestTiming, run)
        wall = out.get(r.run_id)
        out[r.run_id] = Efficiency(
            cost_per_1k=r.cost_per_1k_items, latency_p50=r.latency_p50, latency_p95=p95,
            wall_s_per_1k=wall.wall_s_per_1k if wall else None, run_id=r.run_id, source="efficiency records",
        )
    return out


def _p95(session: Session, timing: Any, run: RunInfo) -> float | None:
    """95th percentile latency of the requests computed during the run (numpy's linear
    interpolation, as the efficiency summaries use). None when every response came from the
    cache (no request was timed in the run's window)."""
    if run.created_at is None or run.finished_at is None or not run.fingerprint:
        return None
    # SQLite hands timestamps back naive; they were written in UTC.
    lo, hi = (t.replace(tzinfo=t.tzinfo or UTC).timestamp() for t in (run.created_at, run.finished_at))
    lat = session.scalars(
        select(timing.latency_s).where(timing.model_fingerprint == run.fingerprint,
                                       timing.started_at >= lo, timing.started_at <= hi)
    ).all()
    if not lat:
        return None
    return float(np.percentile(np.asarray(lat, dtype=np.float64), 95))


def model_efficiency(runs: Sequence[RunInfo], per_run: dict[str, Efficiency]) -> Efficiency:
    """The newest run that has measured efficiency; else the newest with any value."""
    measured = [per_run[r.id] for r in runs if r.id in per_run and per_run[r.id].latency_p50 is not None]
    if measured:
        return measured[0]
    anything = [per_run[r.id] for r in runs if r.id in per_run]
    return anything[0] if anything else Efficiency()


def _membership_detail(config: dict[str, Any]) -> dict[str, Any]:
    """Drill-down lines from the audit's extras (issue 18): adjustment, likely-clean score, and
    which public items look seen (highest membership probability first)."""
    out: dict[str, Any] = {}
    inf = config.get("inflation_detail")
    if isinstance(inf, dict):
        out["inflation_method"] = inf.get("method", "")
    clean = config.get("clean_items_score")
    if isinstance(clean, dict):
        out["likely_clean_score"] = (
            f"{clean['score']:.3f} on {clean['n']} of {clean['n_public']} items (public {clean['public_score']:.3f})"
            if clean.get("score") is not None else f"no likely-clean item among {clean['n_public']} (public {clean['public_score']:.3f})"
        )
    rows = [r for r in config.get("items") or [] if isinstance(r, dict) and r.get("membership_probability") is not None]
    seen = sorted((r for r in rows if r["membership_probability"] >= 0.5), key=lambda r: -r["membership_probability"])
    if rows:
        out["likely_seen_items"] = ", ".join(f"doc {r['doc_id']} ({r['membership_probability']:.2f})" for r in seen[:20]) or "none"
    return out


def load_audit_flags(session: Session, runs: dict[str, RunInfo]) -> dict[str, list[AuditFlag]]:
    """Per run, the contamination audit's latest verdict per task for the run's model weights
    (matched by model fingerprint), with each detector's evidence."""
    try:
        from gapmeter.store.models import AuditDetectorResult, AuditVerdict
    except ImportError:  # no audit subsystem in this installation
        return {}
    by_fp: dict[str, list[str]] = {}
    for rid, run in runs.items():
        if run.fingerprint:
            by_fp.setdefault(run.fingerprint, []).append(rid)
    if not by_fp:
        return {}
    try:
        verdicts = session.scalars(
            select(AuditVerdict).where(AuditVerdict.model_fingerprint.in_(list(by_fp))).order_by(AuditVerdict.id)
        ).all()
        latest: dict[tuple[str, str], Any] = {}
        for v in verdicts:  # later audits of the same weights and task replace earlier ones
            latest[(v.model_fingerprint, v.task)] = v
        evidence: dict[tuple[str, str], list[dict[str, Any]]] = {}
        ids = list({v.audit_id for v in latest.values()})
        if ids:
            for d in session.scalars(select(AuditDetectorResult).where(AuditDetectorResult.audit_id.in_(ids))):
                evidence.setdefault((d.audit_id, d.task), []).append({
                    "detector": d.detector, "p_value": d.p_value, "p_holm": d.p_holm, "effect": d.effect,
                    "effect_name": d.effect_name, "n": d.n, "skipped": d.skipped,
                })
    except SQLAlchemyError:
        session.rollback()
        return {}
    out: dict[str, list[AuditFlag]] = {}
    for (fp, task), v in latest.items():
        detectors = evidence.get((v.audit_id, task), [])
        tested = [d for d in detectors if d["p_holm"] is not None or d["p_value"] is not None]
        p = min((d["p_holm"] if d["p_holm"] is not None else d["p_value"] for d in tested), default=None)
        detail: dict[str, Any] = {"reason": v.reason}
        if v.inflation is not None:
            detail["inflation"] = v.inflation
            detail["inflation_ci95"] = [v.inflation_ci_low, v.inflation_ci_high]
        detail.update(_membership_detail(v.config if isinstance(v.config, dict) else {}))
        for d in detectors:
            detail[d["detector"]] = (
                f"skipped: {d['skipped']}" if d["skipped"] else
                f"p={_g(d['p_value'])} (Holm {_g(d['p_holm'])}), {d['effect_name'] or 'effect'}={_g(d['effect'])}, n={d['n']}"
            )
        for rid in by_fp[fp]:
            out.setdefault(rid, []).append(AuditFlag(
                task=task, verdict=v.verdict, p_value=p, effect=v.inflation, run_id=rid, audit_id=v.audit_id,
                detail=detail,
            ))
    return out


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"
