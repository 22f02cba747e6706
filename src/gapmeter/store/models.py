"""Tables: runs, the response cache, per-doc records, aggregate metrics, efficiency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash of the run spec
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | complete
    model: Mapped[str] = mapped_column(String(64))
    model_args: Mapped[str] = mapped_column(Text, default="")
    model_fingerprint: Mapped[str] = mapped_column(String(64))
    tasks: Mapped[list[Any]] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    wall_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class CachedResponse(Base):
    """One model response, written as soon as it is computed (the resume mechanism)."""

    __tablename__ = "responses"

    model_fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    response: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DocRecord(Base):
    __tablename__ = "doc_records"
    __table_args__ = (UniqueConstraint("run_id", "task", "doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    doc_id: Mapped[int] = mapped_column(Integer)
    doc_hash: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the samples_<task>.jsonl line


class MetricValue(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "task", "metric", "filter"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    is_group: Mapped[int] = mapped_column(Integer, default=0)
    metric: Mapped[str] = mapped_column(String(100))
    filter: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    clustered_stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer)



class RequestTiming(Base):
    """How one cached response was computed: its timing, tokens and the process's peak memory.

    Keyed like the response cache and written in the response's transaction, so a run that is killed
    and resumed (or that reuses another run's responses) is measured from the one computation of
    each response: never lost, never counted twice. Definitions: ``docs/efficiency.md``.
    """

    __tablename__ = "request_timings"
    __table_args__ = (Index("ix_request_timings_span", "model_fingerprint", "started_at"),)

    model_fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float] = mapped_column(Float)  # unix seconds
    finished_at: Mapped[float] = mapped_column(Float)  # unix seconds
    latency_s: Mapped[float] = mapped_column(Float)
    ttft_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    token_source: Mapped[str | None] = mapped_column(String(16), nullable=True)  # provider|backend|tokenizer
    timing_source: Mapped[str] = mapped_column(String(16))  # backend | engine
    batch_size: Mapped[int] = mapped_column(Integer, default=1)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    peak_host_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    peak_gpu_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EfficiencyValue(Base):
    """A run's efficiency and cost: one row for the run (scope ``run``, task ``""``), one per task
    and group. ``summary`` holds the full block written to results.json."""

    __tablename__ = "efficiency"
    __table_args__ = (UniqueConstraint("run_id", "scope", "task"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(8))  # run | task | group
    task: Mapped[str] = mapped_column(String(200), default="")
    n_items: Mapped[int] = mapped_column(Integer)
    n_requests: Mapped[int] = mapped_column(Integer)
    n_timed_requests: Mapped[int] = mapped_column(Integer)
    compute_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    latency_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_p90: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    requests_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    items_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    output_tokens_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_host_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    peak_gpu_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    cost_basis: Mapped[str | None] = mapped_column(String(16), nullable=True)  # tokens | gpu_time
    cost_per_1k_items: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # main metric, for score/$
    score_per_dollar: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)

class AuditVerdict(Base):
    """``gapmeter audit``: the verdict and inflation estimate for one (audit, task)."""

    __tablename__ = "audit_verdicts"
    __table_args__ = (UniqueConstraint("audit_id", "task"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(String(64), index=True)  # hash of model + tasks + settings
    model: Mapped[str] = mapped_column(String(64))
    model_args: Mapped[str] = mapped_column(Text, default="")
    model_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    task: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))  # clean | suspicious | contaminated | untested
    reason: Mapped[str] = mapped_column(Text, default="")
    inflation: Mapped[float | None] = mapped_column(Float, nullable=True)
    inflation_ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    inflation_ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    inflation_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    public_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    equivalent_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditDetectorResult(Base):
    """One detector on one (audit, task): statistic, p-value (raw and Holm), effect, or why skipped."""

    __tablename__ = "audit_results"
    __table_args__ = (UniqueConstraint("audit_id", "task", "detector"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(String(64), index=True)
    model_fingerprint: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(200))
    detector: Mapped[str] = mapped_column(String(64))
    needs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    statistic: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_holm: Mapped[float | None] = mapped_column(Float, nullable=True)
    effect: Mapped[float | None] = mapped_column(Float, nullable=True)
    effect_name: Mapped[str] = mapped_column(String(100), default="")
    n: Mapped[int] = mapped_column(Integer, default=0)
    n_reference: Mapped[int | None] = mapped_column(Integer, nullable=True)
    skipped: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

