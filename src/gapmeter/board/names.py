"""Model names on the board: one normal form, checked after normalising, and who owns each.

A name is part of a URL (``/models/{name}``) and shown on every page, so after Unicode NFC and
trimming it must be non-empty and free of path characters (``/``, ``\\``, a name of dots),
control and format characters (bidi overrides that reorder what a reader sees, zero-width
characters that make two names look alike).

A name belongs to the first submitter who used it, by a submission or a private evaluation;
runs written into the store by ``gapmeter run`` belong to the board's operator (no submitter).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gapmeter.store.board_tables import BoardEntry, PrivateEval

OPERATOR = 0  # owner id of names that only local runs use


def normalize_model_name(raw: str) -> str:
    """The stored form of a model name; ValueError with a one-line reason."""
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise ValueError("model name is empty")
    if len(name) > 200:
        raise ValueError("model name is longer than 200 characters")
    if "/" in name or "\\" in name or set(name) == {"."}:
        raise ValueError("model name must not contain / or \\ or be only dots (it is part of a URL)")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise ValueError(f"model name contains a control or invisible character (U+{ord(ch):04X})")
    return name


def owner_of(session: Session, name: str, local_names: set[str]) -> int | None:
    """The submitter id owning ``name``, :data:`OPERATOR` for a local run's name, None if free.

    Call after the transaction's first write (``bump_generation``): concurrent claims of one new
    name then queue on that row lock (PostgreSQL) or SQLite's write lock, and the second sees
    the first's claim."""
    sub = session.scalars(
        select(BoardEntry.submitter_id).where(BoardEntry.model_name == name, BoardEntry.submitter_id.is_not(None))
        .order_by(BoardEntry.created_at)
    ).first()
    if sub is not None:
        return sub
    ev = session.scalars(
        select(PrivateEval.submitter_id).where(PrivateEval.model_name == name, PrivateEval.status != "deleted")
        .order_by(PrivateEval.id)
    ).first()
    if ev is not None:
        return ev
    if name in local_names:
        return OPERATOR
    local = session.scalars(select(BoardEntry.run_id).where(BoardEntry.model_name == name)).first()
    return OPERATOR if local is not None else None


def canonical_sha256(payload: Any) -> str:
    """Hash of a JSON document's content, not its bytes: key order, spacing and escapes do not
    change it (a re-serialised upload is the same upload)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
