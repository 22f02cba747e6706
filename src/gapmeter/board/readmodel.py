"""What the board shows, read from the store: models, their latest score per task, runs, notes.

A ``Snapshot`` is built from the store and cached; it is rebuilt only when the store changed
(the board's write counter, or a run added by ``gapmeter run`` into the same database), and then
only the new runs' metrics are read again. Pages and API routes derive their rows from it.

Never reads ``board_private_items``: private items stay in ``board/private.py``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gapmeter.board import dimensions
from gapmeter.board.runinfo import RunInfo, Score
from gapmeter.models.base import parse_model_args
from gapmeter.notices import notice
from gapmeter.store.board_tables import (
    BoardAnnotation,
    BoardEntry,
    BoardMeta,
    BoardToken,
    PrivateEval,
)
from gapmeter.store.models import MetricValue, Run
from gapmeter.store.runs import METRICS_REVISION_PREFIX


@dataclass(frozen=True)
class PrivateScore:
    task: str
    metric: str | None
    value: float | None
    stderr: float | None
    n: int
    evals: int


@dataclass
class ModelSummary:
    name: str
    runs: list[RunInfo]  # newest first, hidden ones included
    scores: dict[str, Score]  # task -> primary metric from the newest visible run with the task
    all_scores: dict[str, list[Score]]  # task -> every metric (same run as ``scores``)
    efficiency: dimensions.Efficiency
    audit: list[dimensions.AuditFlag]
    annotations: list[dict[str, Any]]
    private: dict[str, PrivateScore]
    hidden: bool
    submitter: str | None = None


@dataclass
class Snapshot:
    models: dict[str, ModelSummary]
    runs: dict[str, RunInfo]
    tasks: list[str]  # leaderboard columns: top-level tasks/groups with scores, by coverage
    primary: dict[str, str]  # task -> "metric,filter" shown for it
    fingerprint: tuple[Any, ...] = ()
    memo: dict[Any, Any] = field(default_factory=dict)  # per-snapshot derived data (views.py)
    rendered: dict[Any, Any] = field(default_factory=dict)  # per-snapshot response bodies (pagecache.py)
    serial: int = 0  # increases with every rebuild (ETags)


def derive_model_name(run: Run | Any) -> str:
    info = run.model_info or {}
    for key in ("board_name", "name", "model"):
        if isinstance(info.get(key), str) and info[key]:
            return str(info[key])[:200]
    pretrained = info.get("pretrained")
    if not pretrained:
        try:
            pretrained = parse_model_args(run.model_args).get("pretrained") or parse_model_args(run.model_args).get("model")
        except Exception:  # noqa: BLE001 - a name is only cosmetic
            pretrained = None
    if pretrained:
        return PurePath(str(pretrained)).name or str(pretrained)
    return f"{run.model}:{run.id[:8]}"


class SnapshotCache:
    """Thread-safe cache of the latest snapshot, refreshed incrementally on change.

    ``max_age_s == 0``: every read checks the store's fingerprint and waits for a rebuild when it
    changed (always current). ``max_age_s > 0`` (stale-while-revalidate): a snapshot whose
    fingerprint was read less than ``max_age_s`` ago is served as is; an older one is still served
    while one background thread rebuilds it, until it is ``2 * max_age_s`` old, after which readers
    wait for the rebuild. So a page never lags a committed write by more than ``2 * max_age_s``,
    at most one rebuild runs at a time, and a burst of writes costs one rebuild per ``max_age_s``.
    """

    def __init__(self, primary_metrics: dict[str, str] | None = None, max_age_s: float = 0.0,
                 sessions: Callable[[], Session] | None = None,
                 chosen_metrics: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()  # held while building: one build at a time
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0  # monotonic time the served snapshot's fingerprint was read
        self.max_age_s = max_age_s
        self._sessions = sessions  # for background rebuilds (None: readers rebuild, blocking)
        self._refreshing: Future[None] | None = None  # the background rebuild in flight
        self._refresh_lock = threading.Lock()
        self._run_scores: dict[str, tuple[Any, dict[str, list[Score]]]] = {}
        self._run_infos: dict[str, tuple[tuple[Any, ...], RunInfo]] = {}  # reused while unchanged
        self._preferred = primary_metrics or {}
        self._explicit = chosen_metrics or {}  # `board --metric`: said when no run has it
        self._serial = 0
        self.builds = 0  # rebuilds done (a number for tests and the load bench)
        self.on_built: Callable[[Snapshot, Snapshot], None] | None = None  # (old, new), before the swap

    def peek(self) -> Snapshot | None:
        """The snapshot, if it may be served without touching the store (never blocks); None
        when the caller must use ``get``. Starts a background rebuild when one is due."""
        snap = self._snapshot
        if snap is None or self.max_age_s <= 0:
            return None
        age = time.monotonic() - self._checked_at
        if age < self.max_age_s:
            return snap
        if age < 2 * self.max_age_s and self._sessions is not None:
            self._start_refresh()
            return snap
        return None

    def _servable(self, now: float) -> bool:
        return self.max_age_s > 0 and now - self._checked_at < 2 * self.max_age_s

    def get(self, session: Session) -> Snapshot:
        snap = self.peek()
        if snap is not None:
            return snap
        return self._current(session)

    def _current(self, session: Session) -> Snapshot:
        """Check the fingerprint and rebuild if it changed, in this thread."""
        t_read = time.monotonic()
        fp = _fingerprint(session)
        snap = self._snapshot
        if snap is not None and snap.fingerprint == fp:
            self._checked_at = max(self._checked_at, t_read)
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is not None and snap.fingerprint == fp:  # another thread just built it
                self._checked_at = max(self._checked_at, t_read)
                return snap
            if snap is not None and (self._checked_at >= t_read or self._servable(time.monotonic())):
                # Rebuilt while we waited: from the store as it was after we arrived, or young
                # enough to serve (rebuilding again would queue every waiting reader behind us).
                return snap
            return self._rebuild(session, fp, t_read)

    def _rebuild(self, session: Session, fp: tuple[Any, ...], t_read: float) -> Snapshot:
        """Build and swap in a new snapshot (caller holds ``_lock``)."""
        old = self._snapshot
        t0 = time.monotonic()
        snap = self._build(session, fp)
        self._serial += 1
        snap.serial = self._serial
        self.builds += 1
        t1 = time.monotonic()
        if old is not None and self.on_built is not None:
            try:
                self.on_built(old, snap)  # e.g. pre-render the pages readers asked for most
            except Exception:  # noqa: BLE001 - warming is an optimisation; readers render on a miss
                logging.getLogger("gapmeter.board").exception("warming the new snapshot failed")
        self._snapshot = snap
        logging.getLogger("gapmeter.board").info(
            "snapshot rebuilt", extra={"build_ms": round(1000 * (t1 - t0), 1), "warm_ms": round(1000 * (time.monotonic() - t1), 1),
                                       "waited_ms": round(1000 * (t0 - t_read), 1), "models": len(snap.models)})
        self._checked_at = t_read  # the new snapshot holds every write committed before t_read
        return snap

    def refreshing(self) -> Future[None] | None:
        """The background rebuild in flight, if any (async readers await it instead of
        blocking a thread on the rebuild lock)."""
        return self._refreshing

    def _start_refresh(self) -> None:
        with self._refresh_lock:
            if self._refreshing is not None:
                return
            done: Future[None] = Future()
            self._refreshing = done
        threading.Thread(target=self._refresh, args=(done,), name="board-snapshot-refresh", daemon=True).start()

    def _refresh(self, done: Future[None]) -> None:
        try:
            assert self._sessions is not None
            with self._sessions() as session:
                t_read = time.monotonic()
                fp = _fingerprint(session)
                with self._lock:
                    snap = self._snapshot
                    if snap is not None and snap.fingerprint == fp:
                        self._checked_at = max(self._checked_at, t_read)
                    else:
                        self._rebuild(session, fp, t_read)
        except Exception:  # noqa: BLE001 - readers fall back to a blocking rebuild once it is too old
            logging.getLogger("gapmeter.board").exception("background snapshot rebuild failed")
        finally:
            with self._refresh_lock:
                self._refreshing = None
            done.set_result(None)

    def _build(self, session: Session, fp: tuple[Any, ...]) -> Snapshot:
        # Ids and finish times first: only runs new or changed since the last build are read in
        # full (their JSON columns cost more to decode than everything else here).
        # A run's version: its finish time and the revision of metrics added to it later (a judge's).
        revisions = dict(session.execute(
            select(BoardMeta.key, BoardMeta.value).where(BoardMeta.key.startswith(METRICS_REVISION_PREFIX))
        ).all())
        current: dict[str, Any] = {
            rid: (fin, revisions.get(f"{METRICS_REVISION_PREFIX}{rid}", 0))
            for rid, fin in session.execute(select(Run.id, Run.finished_at).where(Run.status == "complete"))
        }
        stale = [rid for rid, fin in current.items() if rid not in self._run_scores or self._run_scores[rid][0] != fin]
        for rid in list(self._run_scores):
            if rid not in current:
                del self._run_scores[rid]
        for chunk in _chunks(stale, 500):
            loaded: dict[str, dict[str, list[Score]]] = {rid: {} for rid in chunk}
            for m in session.execute(
                select(MetricValue.run_id, MetricValue.task, MetricValue.is_group, MetricValue.metric,
                       MetricValue.filter, MetricValue.value, MetricValue.stderr, MetricValue.ci_low,
                       MetricValue.ci_high, MetricValue.n).where(MetricValue.run_id.in_(chunk))
            ):
                loaded[m.run_id].setdefault(m.task, []).append(
                    Score(m.task, m.metric, m.filter, _f(m.value), _f(m.stderr), _f(m.ci_low), _f(m.ci_high),
                          int(m.n), m.run_id, bool(m.is_group))
                )
            for rid in chunk:
                self._run_scores[rid] = (current[rid], loaded[rid])

        entries = {e.run_id: e for e in session.scalars(select(BoardEntry))}
        names = dict(session.execute(select(BoardToken.id, BoardToken.name)).all())
        runs: dict[str, RunInfo] = {}
        for rid in list(self._run_infos):
            if rid not in current:
                del self._run_infos[rid]
        sigs: dict[str, tuple[Any, ...]] = {}
        for rid, fin in current.items():
            e = entries.get(rid)
            sigs[rid] = (fin, e.model_name, e.source, e.submitter_id, names.get(e.submitter_id), e.hidden,
                         e.hidden_reason) if e else (fin,)
            known = self._run_infos.get(rid)
            if known is not None and known[0] == sigs[rid]:
                runs[rid] = known[1]
        todo = [rid for rid in current if rid not in runs]
        full = {}
        for chunk in _chunks(todo, 500):
            full.update((r.id, r) for r in session.execute(
                select(Run.id, Run.model, Run.model_args, Run.model_info, Run.created_at, Run.finished_at,
                       Run.wall_seconds, Run.tasks, Run.model_fingerprint).where(Run.id.in_(chunk))
            ))
        for rid in todo:
            if rid not in full:  # deleted since the first query
                continue
            r, e = full[rid], entries.get(rid)
            scores = self._run_scores[rid][1]
            top = [t for t in (r.tasks or []) if isinstance(t, str) and t in scores] or sorted(
                t for t, rows in scores.items() if rows
            )
            runs[rid] = RunInfo(
                id=rid, model_name=e.model_name if e else derive_model_name(r), backend=r.model,
                model_args=r.model_args, created_at=r.created_at, finished_at=r.finished_at,
                wall_seconds=r.wall_seconds, top_tasks=top, fingerprint=r.model_fingerprint,
                source=e.source if e else "local",
                submitter=names.get(e.submitter_id) if e and e.submitter_id else None,
                hidden=bool(e.hidden) if e else False, hidden_reason=e.hidden_reason if e else "",
                scores=scores,
            )
            self._run_infos[rid] = (sigs[rid], runs[rid])
        primary = self._primary(runs)
        runs = {rid: runs[rid] for rid in current if rid in runs}  # the store's order, as before
        by_model: dict[str, list[RunInfo]] = {}
        for run in runs.values():
            by_model.setdefault(run.model_name, []).append(run)
        efficiency = dimensions.load_efficiency(session, runs)
        audit = dimensions.load_audit_flags(session, runs)
        notes: dict[str, list[dict[str, Any]]] = {}
        for a in session.scalars(select(BoardAnnotation).order_by(BoardAnnotation.id)):
            notes.setdefault(a.model_name, []).append(
                {"id": a.id, "text": a.text, "author": a.author, "run_id": a.run_id,
                 "created_at": a.created_at.isoformat() if a.created_at else None}
            )
        private = _private_scores(session)
        models: dict[str, ModelSummary] = {}
        coverage: dict[str, int] = {}
        for name, model_runs in by_model.items():
            model_runs.sort(key=lambda x: (x.finished_at or x.created_at or datetime.min).isoformat(), reverse=True)
            visible = [x for x in model_runs if not x.hidden]
            scores: dict[str, Score] = {}
            all_scores: dict[str, list[Score]] = {}
            for run in visible:  # newest first: the newest run with a task supplies its score
                for task in run.top_tasks:
                    if task in scores:
                        continue
                    chosen = _pick(run.scores.get(task, []), primary.get(task))
                    if chosen is not None:
                        scores[task] = chosen
                        all_scores[task] = run.scores[task]
            for task in scores:
                coverage[task] = coverage.get(task, 0) + 1
            models[name] = ModelSummary(
                name=name, runs=model_runs, scores=scores, all_scores=all_scores,
                efficiency=dimensions.model_efficiency(visible, efficiency),
                audit=[f for run in visible for f in audit.get(run.id, [])],
                annotations=notes.get(name, []), private=private.get(name, {}),
                hidden=not visible, submitter=next((x.submitter for x in model_runs if x.submitter), None),
            )
        tasks = sorted(coverage, key=lambda t: (-coverage[t], t))
        return Snapshot(models=models, runs=runs, tasks=tasks, primary=primary, fingerprint=fp)

    def _primary(self, runs: dict[str, RunInfo]) -> dict[str, str]:
        """Per task, the metric shown: the task's first declared metric when known, else the
        most common ``metric,filter`` (acc before others)."""
        seen: dict[str, dict[str, int]] = {}
        for run in runs.values():
            for task, key in run.value_keys:
                counts = seen.setdefault(task, {})
                counts[key] = counts.get(key, 0) + 1
        out = {}
        for task, counts in seen.items():
            preferred = self._preferred.get(task)
            if preferred in counts:
                out[task] = preferred
            else:
                if preferred is not None and self._explicit.get(task) == preferred:
                    notice(f"board --metric {task}={preferred}: no visible run has it; "
                           "the task is ranked by its default metric")
                out[task] = sorted(counts, key=lambda k: (-counts[k], not k.startswith("acc,"), k))[0]
        return out


def score_by(model: ModelSummary, task: str, key: str) -> Score | None:
    """The model's ``task`` score on ``key`` ("metric,filter"), chosen as the snapshot chooses
    its primary score: from the newest visible run that has the task with that metric."""
    for run in model.runs:  # newest first
        if not run.hidden and task in run.top_tasks:
            chosen = _pick(run.scores.get(task, []), key)
            if chosen is not None:
                return chosen
    return None


def _pick(rows: list[Score], key: str | None) -> Score | None:
    for s in rows:
        if s.key == key and s.value is not None:
            return s
    return None


def _private_scores(session: Session) -> dict[str, dict[str, PrivateScore]]:
    """Per model and task, the pooled score of all complete private evaluations (n-weighted)."""
    acc: dict[tuple[str, str], list[PrivateEval]] = {}
    for e in session.scalars(select(PrivateEval).where(PrivateEval.status == "complete")):
        acc.setdefault((e.model_name, e.task), []).append(e)
    out: dict[str, dict[str, PrivateScore]] = {}
    for (model, task), evals in acc.items():
        n = sum(e.n for e in evals)
        if n == 0:
            continue
        value = sum((e.value or 0.0) * e.n for e in evals) / n
        # Pooled SE of an n-weighted mean of independent evaluations.
        var = sum(((e.stderr or 0.0) * e.n / n) ** 2 for e in evals)
        out.setdefault(model, {})[task] = PrivateScore(task, evals[0].metric, value, math.sqrt(var), n, len(evals))
    return out


def _fingerprint(session: Session) -> tuple[Any, ...]:
    gen = session.scalar(select(BoardMeta.value).where(BoardMeta.key == "generation")) or 0
    count, latest = session.execute(
        select(func.count(Run.id), func.max(Run.finished_at)).where(Run.status == "complete")
    ).one()
    return (gen, count, str(latest))


def bump_generation(session: Session) -> None:
    """Mark the store as changed by the board. One atomic UPDATE, issued first in a writing
    transaction, so SQLite takes its write lock at once (no read-then-write upgrade races)."""
    done = session.execute(
        update(BoardMeta).where(BoardMeta.key == "generation").values(value=BoardMeta.value + 1)
    )
    if done.rowcount == 0:  # type: ignore[attr-defined]
        session.add(BoardMeta(key="generation", value=1))
        session.flush()


def _f(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
