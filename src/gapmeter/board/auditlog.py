"""The board's append-only audit log: who changed what, when (tokens, submissions, hiding,
annotations, private splits and evaluations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gapmeter.store.board_tables import BoardAuditEntry


def record(session: Session, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
    """Add an entry in the caller's transaction, so the change and its log commit together."""
    session.add(BoardAuditEntry(actor=actor[:100], action=action[:50], target=target[:300], detail=detail or {}))


def entries(session: Session, *, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(BoardAuditEntry).order_by(BoardAuditEntry.id.desc()).offset(offset).limit(limit)
    )
    return [
        {"id": e.id, "at": e.at.isoformat() if e.at else None, "actor": e.actor, "action": e.action,
         "target": e.target, "detail": e.detail}
        for e in rows
    ]
