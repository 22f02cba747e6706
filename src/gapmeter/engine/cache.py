"""The response cache: responses keyed by (model fingerprint, request hash), durable per batch."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.requests import Request, RequestKind, Response, response_from_json, response_to_json
from gapmeter.store.models import CachedResponse


class ResponseCache:
    def __init__(self, sessions: sessionmaker[Session], model_fingerprint: str) -> None:
        self.sessions = sessions
        self.fingerprint = model_fingerprint

    def get_many(self, hashes: Iterable[str]) -> dict[str, Any]:
        wanted = list(hashes)
        found: dict[str, Any] = {}
        with self.sessions() as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = s.execute(
                    select(CachedResponse.request_hash, CachedResponse.kind, CachedResponse.response).where(
                        CachedResponse.model_fingerprint == self.fingerprint,
                        CachedResponse.request_hash.in_(chunk),
                    )
                )
                for h, kind, value in rows:
                    found[h] = response_from_json(kind, value)
        return found

    def put_many(self, items: list[tuple[str, RequestKind, Response]], *, session: Session | None = None) -> None:
        """Write and commit: once this returns, the responses survive a kill. Given a
        ``session``, write in it and leave the commit to the caller (one transaction with
        other rows)."""
        if not items:
            return
        rows = [
            {"model_fingerprint": self.fingerprint, "request_hash": h, "kind": k, "response": response_to_json(k, r)}
            for h, k, r in items
        ]
        if session is not None:
            self._insert(session, rows)
            return
        with self.sessions() as s:
            self._insert(s, rows)
            s.commit()

    def _insert(self, s: Session, rows: list[dict[str, Any]]) -> None:
        # A parameter list (executemany), not .values(rows): the statement is compiled once
        # and cached instead of once per batch with a parameter per cell (which cost more
        # than the rest of the engine's per-response work together).
        if s.bind is not None and s.bind.dialect.name in ("sqlite", "postgresql"):
            s.execute(_insert_statement(s.bind.dialect.name), rows)
        else:
            existing = {h for (h,) in s.execute(select(CachedResponse.request_hash).where(
                CachedResponse.model_fingerprint == self.fingerprint,
                CachedResponse.request_hash.in_([r["request_hash"] for r in rows])))}
            s.add_all(CachedResponse(**r) for r in rows if r["request_hash"] not in existing)


@functools.cache
def _insert_statement(dialect: str) -> Any:
    if dialect == "sqlite":
        return sqlite_insert(CachedResponse).on_conflict_do_nothing()
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(CachedResponse).on_conflict_do_nothing()


def request_kind(request: Request) -> RequestKind:
    return request.kind
