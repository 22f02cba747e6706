"""Storing an accepted submission: one transaction, idempotent by content, names owned.

Split from ``submissions.py`` (validation and re-scoring), which runs in worker processes; this
part runs on the board's writer thread.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.board.auditlog import record
from gapmeter.board.auth import Principal
from gapmeter.board.names import OPERATOR, owner_of
from gapmeter.board.readmodel import bump_generation
from gapmeter.board.submissions import SubmissionError, ValidatedRun
from gapmeter.store.board_tables import BoardEntry, BoardSubmission
from gapmeter.store.models import Run, utcnow
from gapmeter.store.runs import save_results


@dataclass(frozen=True)
class Accepted:
    submission_id: int
    run_id: str
    model_name: str
    duplicate: bool
    checks: dict[str, Any]


_SQLITE_WRITES = threading.Lock()


def store(sessions: sessionmaker[Session], run: ValidatedRun, who: Principal, content_sha: str,
          local_names: frozenset[str] = frozenset()) -> Accepted:
    """Write the run in one transaction; a repeated upload returns the first one (idempotent).

    On SQLite, submissions are written one at a time by this process (validation still runs in
    parallel): queueing on a lock is fairer and cheaper than many threads polling SQLite's."""
    if sessions.kw["bind"].dialect.name == "sqlite":
        with _SQLITE_WRITES:
            return _store(sessions, run, who, content_sha, local_names)
    return _store(sessions, run, who, content_sha, local_names)


def _store(sessions: sessionmaker[Session], run: ValidatedRun, who: Principal, content_sha: str,
           local_names: frozenset[str]) -> Accepted:
    run_id = "sub-" + hashlib.sha256(f"{who.id}:{content_sha}".encode()).hexdigest()[:20]
    with sessions() as s:
        bump_generation(s)  # first statement writes: SQLite takes the write lock now
        existing = s.scalars(
            select(BoardSubmission).where(BoardSubmission.submitter_id == who.id, BoardSubmission.content_sha256 == content_sha)
        ).first()
        if existing is not None:
            s.rollback()
            return Accepted(existing.id, existing.run_id, existing.model_name, True, existing.checks)
        owner = owner_of(s, run.model_name, set(local_names))  # claimed by a private evaluation too
        if owner not in (None, who.id):
            s.rollback()
            whose = "the board's operator" if owner == OPERATOR else "another submitter"
            raise SubmissionError(f"model name {run.model_name!r} belongs to {whose}; choose another --name", 409)
        now = utcnow()
        s.add(Run(
            id=run_id, status="complete", model=run.spec["model"], model_args="", model_fingerprint=content_sha[:64],
            tasks=run.top_tasks, spec=run.spec, model_info=run.model_info | {"board_name": run.model_name},
            output_path=None, created_at=now, finished_at=now, wall_seconds=None,
        ))
        s.flush()
        # The engine's path (store/runs.py): bulk INSERTs, which matter here: with one writer
        # thread on SQLite this is the part of a submission everyone queues behind.
        save_results(s, run_id, run.records, run.metrics, replace=False)
        s.add(BoardEntry(run_id=run_id, model_name=run.model_name, submitter_id=who.id, source="submission"))
        sub = BoardSubmission(
            submitter_id=who.id, content_sha256=content_sha, run_id=run_id, model_name=run.model_name,
            n_tasks=len(run.top_tasks), n_samples=len(run.records), checks=run.checks,
        )
        s.add(sub)
        record(s, who.name, "submission.accept", f"run:{run_id}",
               {"model": run.model_name, "tasks": run.top_tasks, "samples": len(run.records)})
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            again = s.scalars(
                select(BoardSubmission).where(BoardSubmission.submitter_id == who.id, BoardSubmission.content_sha256 == content_sha)
            ).first()
            if again is None:
                raise
            return Accepted(again.id, again.run_id, again.model_name, True, again.checks)
        return Accepted(sub.id, run_id, run.model_name, False, run.checks)
