"""Board tokens: created once, shown once, stored as SHA-256, checked in constant time.

Tokens are 256-bit random secrets (``gmb_`` + URL-safe base64), so a fast hash is the right
storage (a slow password hash protects guessable secrets; these are not guessable). Roles are
ordered: viewer < submitter < admin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gapmeter.board.auditlog import record
from gapmeter.errors import ConfigError
from gapmeter.store.board_tables import ROLES, BoardToken
from gapmeter.store.models import utcnow

TOKEN_PREFIX = "gmb_"


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    role: str
    expires_at: datetime | None = None

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, name: str, role: str, *, actor: str,
                 expires_in_days: float | None = None) -> tuple[BoardToken, str]:
    """A new token for ``name``; returns the row and the secret (shown once, never stored).
    ``expires_in_days``: the token stops working after that long (default: never)."""
    if role not in ROLES:
        raise ConfigError(f"--role {role!r}: choose one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > 100:
        raise ConfigError("--name must be 1-100 characters")
    if expires_in_days is not None and not 0 < expires_in_days <= 36500:
        raise ConfigError("--expires-days must be between 0 and 36500")
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = BoardToken(name=name, role=role, token_hash=hash_token(secret), prefix=secret[:10], expires_at=expires)
    session.add(row)
    session.flush()
    record(session, actor, "token.create", f"token:{row.id}", {"name": name, "role": role, "prefix": row.prefix,
                                                              "expires_at": expires.isoformat() if expires else None})
    return row, secret


def revoke_tokens(session: Session, *, actor: str, name: str | None = None, token_id: int | None = None,
                  prefix: str | None = None) -> list[BoardToken]:
    query = select(BoardToken).where(BoardToken.revoked_at.is_(None))
    if token_id is not None:
        query = query.where(BoardToken.id == token_id)
    elif prefix:
        query = query.where(BoardToken.prefix == prefix[:10])
    elif name:
        query = query.where(BoardToken.name == name)
    else:
        raise ConfigError("say which token to revoke: --name, --id or --prefix")
    rows = list(session.scalars(query))
    now = utcnow()
    for row in rows:
        row.revoked_at = now
        record(session, actor, "token.revoke", f"token:{row.id}", {"name": row.name, "prefix": row.prefix})
    return rows


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite returns naive UTC


class TokenChecker:
    """Looks tokens up by hash; records ``last_used_at`` at most once a minute per token."""

    def __init__(self) -> None:
        self._touched: dict[int, float] = {}
        self._lock = threading.Lock()

    def check(self, session: Session, secret: str) -> Principal | None:
        if not secret or len(secret) > 200:
            return None
        digest = hash_token(secret)
        row = session.execute(
            select(BoardToken.id, BoardToken.name, BoardToken.role, BoardToken.token_hash, BoardToken.revoked_at,
                   BoardToken.expires_at)
            .where(BoardToken.token_hash == digest)
        ).one_or_none()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
            return None
        if row.expires_at is not None and _aware(row.expires_at) <= utcnow():
            return None
        self._touch(session, row.id)
        return Principal(row.id, row.name, row.role, _aware(row.expires_at) if row.expires_at else None)

    def _touch(self, session: Session, token_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(token_id, -1e9) < 60:
                return
            self._touched[token_id] = now
        try:
            session.execute(update(BoardToken).where(BoardToken.id == token_id).values(last_used_at=utcnow()))
            session.commit()
        except Exception:  # noqa: BLE001 - a busy database must not fail the request
            session.rollback()
