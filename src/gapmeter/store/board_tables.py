"""The board's tables: tokens, audit log, entries, submissions, annotations, private items.

Part of the store (the board imports them; the store never imports the board), and imported by
``gapmeter/store/__init__.py`` so that one ``Base.metadata`` (and one Alembic history) describes
the whole store whichever store module is imported first. Private items live only here and are read only by
``board/private.py``; no page or API route selects from ``board_private_items``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gapmeter.store.models import Base, utcnow

ROLES = ("viewer", "submitter", "admin")  # each role can do what the ones before it can


class BoardToken(Base):
    """A submitter's credential; only the SHA-256 of the secret is stored."""

    __tablename__ = "board_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # None: never
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BoardAuditEntry(Base):
    """One change made through the board or its CLI (append-only)."""

    __tablename__ = "board_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class BoardEntry(Base):
    """How a stored run appears on the board: its model name, who sent it, whether it is hidden.

    Runs evaluated locally into the same store have no row until an admin acts on them; the
    board then derives the model name from the run's model arguments.
    """

    __tablename__ = "board_entries"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    submitter_id: Mapped[int | None] = mapped_column(ForeignKey("board_tokens.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="local")  # local | submission
    hidden: Mapped[int] = mapped_column(Integer, default=0)
    hidden_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BoardSubmission(Base):
    """An accepted upload. (submitter, content hash) is unique: a retried upload is not doubled."""

    __tablename__ = "board_submissions"
    __table_args__ = (UniqueConstraint("submitter_id", "content_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("board_tokens.id"), index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    n_tasks: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BoardAnnotation(Base):
    """An admin's note on a model (or one of its runs), shown on the leaderboard and model page."""

    __tablename__ = "board_annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BoardMeta(Base):
    """Small counters; ``generation`` changes on every board write (the page caches key on it)."""

    __tablename__ = "board_meta"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class PrivateSplit(Base):
    """A set of held-out items for one task: marked from a local split, or generated fresh."""

    __tablename__ = "board_private_splits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(200), index=True)
    origin: Mapped[str] = mapped_column(String(16))  # marked | generated
    split_name: Mapped[str] = mapped_column(String(100))
    n_items: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PrivateItem(Base):
    """One held-out doc (with its answer). Never leaves ``board/private.py``."""

    __tablename__ = "board_private_items"
    __table_args__ = (UniqueConstraint("split_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    split_id: Mapped[int] = mapped_column(ForeignKey("board_private_splits.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)
    doc_hash: Mapped[str] = mapped_column(String(64))


class PrivateEval(Base):
    """The board's own evaluation of a submitter's endpoint on private items (aggregates only)."""

    __tablename__ = "board_private_evals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("board_tokens.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    task: Mapped[str] = mapped_column(String(200))
    endpoint_host: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|complete|failed
    metric: Mapped[str | None] = mapped_column(String(100), nullable=True)
    filter: Mapped[str | None] = mapped_column(String(100), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PrivateExposure(Base):
    """Which private item was shown to which submitter (rotation: never the same item twice)."""

    __tablename__ = "board_private_exposures"

    submitter_id: Mapped[int] = mapped_column(ForeignKey("board_tokens.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("board_private_items.id", ondelete="CASCADE"), primary_key=True)
    eval_id: Mapped[int] = mapped_column(ForeignKey("board_private_evals.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
