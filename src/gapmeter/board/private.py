"""Private held-out items: kept by the board, evaluated by the board, never shown to anyone.

An admin either *marks* a split of a task private (the board copies that split's docs into its
store, e.g. a held-out file no submitter has) or lets the board *generate* fresh items for a
generated task with a secret seed. A submitter then asks the board to evaluate their
OpenAI-compatible endpoint: the board picks items this submitter has never been shown
(rotation), records them as shown *before* sending anything, sends the prompts (rate-limited),
scores the answers with the task's own metrics and keeps only the aggregate.

This is the only module that reads ``board_private_items``. Error messages and logs name tasks
and counts, never an item, a prompt, a response or an answer.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.board.auditlog import record
from gapmeter.board.auth import Principal
from gapmeter.board.endpoint import (
    API_MODEL_RE,
    FAILED,
    EndpointFailed,
    EndpointGuard,
    IPNetwork,
    build_backend,
    check_base_url,
    check_reachable,
    failure_category,
)
from gapmeter.board.names import OPERATOR, owner_of
from gapmeter.board.readmodel import bump_generation
from gapmeter.board.tasklib import TaskLibrary
from gapmeter.engine.aggregate import aggregate_task
from gapmeter.errors import GapmeterError
from gapmeter.requests import doc_hash
from gapmeter.store.board_tables import PrivateEval, PrivateExposure, PrivateItem, PrivateSplit
from gapmeter.store.models import utcnow
from gapmeter.tasks.hooks import resolve_hook
from gapmeter.tasks.scoring import score_task
from gapmeter.tasks.task import Task

log = logging.getLogger(__name__)


class PrivateEvalError(GapmeterError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PrivatePolicy:
    items_per_eval: int = 50  # per task, per evaluation
    min_interval_s: float = 3600.0  # between two evaluations by one submitter
    max_rps: float = 5.0  # requests per second sent to an endpoint
    allow_private_endpoints: bool = False  # loopback/private/link-local endpoints (--allow_private_endpoints)
    allow_networks: tuple[IPNetwork, ...] = ()  # or only these non-public networks


# ----------------------------------------------------------------------------- admin side
def mark_split(sessions: sessionmaker[Session], library: TaskLibrary, task_name: str, split: str, actor: str) -> dict[str, Any]:
    """Copy ``split`` of a task into the private store."""
    task = _leaf(library, task_name)
    try:
        docs = task._process(task._split(split), task.config.process_docs)
    except GapmeterError as err:
        raise PrivateEvalError(f"task {task_name}: split {split!r}: {err}") from None
    return _save_split(sessions, task_name, "marked", split, docs, actor)


def generate_split(sessions: sessionmaker[Session], library: TaskLibrary, task_name: str, n: int, actor: str) -> dict[str, Any]:
    """Fresh items from the task's generator with a secret random seed."""
    task = _leaf(library, task_name)
    gen = task.config.source.generator
    if gen is None:
        raise PrivateEvalError(f"task {task_name} has no generator; mark one of its splits private instead")
    if not 1 <= n <= 100_000:
        raise PrivateEvalError("n must be between 1 and 100000")
    fn = resolve_hook(gen.function, yaml_dir=task.yaml_dir, where=f"task {task_name}: source.generator")
    seed = secrets.randbelow(2**31)
    docs = list(fn(split="private", n=n, seed=seed, **gen.params))
    public = {doc_hash(d) for d in task.eval_docs}
    fresh = [d for d in docs if doc_hash(d) not in public]  # never an item of the public split
    return _save_split(sessions, task_name, "generated", "private", fresh, actor)


def _leaf(library: TaskLibrary, name: str) -> Task:
    if not library.knows(name) or name not in library.registry.tasks:
        raise PrivateEvalError(f"unknown task {name!r}", 404)
    return library.task(name, None)[0]


def _save_split(sessions: sessionmaker[Session], task: str, origin: str, split: str, docs: list[dict[str, Any]], actor: str) -> dict[str, Any]:
    if not docs:
        raise PrivateEvalError(f"task {task}: no items to keep private")
    with sessions() as s:
        bump_generation(s)
        row = PrivateSplit(task=task, origin=origin, split_name=split, n_items=len(docs), created_by=actor)
        s.add(row)
        s.flush()
        for i, doc in enumerate(docs):
            s.add(PrivateItem(split_id=row.id, position=i, doc=doc, doc_hash=doc_hash(doc)))
        record(s, actor, f"private.{origin}", f"task:{task}", {"split_id": row.id, "split": split, "items": len(docs)})
        s.commit()
        return split_summary(row)


def split_summary(row: PrivateSplit) -> dict[str, Any]:
    return {"id": row.id, "task": row.task, "origin": row.origin, "split": row.split_name,
            "items": row.n_items, "created_by": row.created_by,
            "created_at": row.created_at.isoformat() if row.created_at else None}


def list_splits(session: Session) -> list[dict[str, Any]]:
    return [split_summary(r) for r in session.scalars(select(PrivateSplit).order_by(PrivateSplit.id))]


def private_tasks(session: Session) -> dict[str, int]:
    """task -> number of private items (what submitters may ask to be evaluated on)."""
    rows = session.execute(select(PrivateSplit.task, func.sum(PrivateSplit.n_items)).group_by(PrivateSplit.task))
    return {t: int(n or 0) for t, n in rows}


# -------------------------------------------------------------------------- submitter side
@dataclass(frozen=True)
class EvalRequest:
    model_name: str
    base_url: str
    api_model: str
    api_key: str | None
    tasks: tuple[str, ...]
    api: str = "completions"  # completions | chat


BackendFactory = Callable[[EvalRequest, PrivatePolicy, EndpointGuard], Any]


def default_backend(req: EvalRequest, policy: PrivatePolicy, guard: EndpointGuard) -> Any:
    """The ``openai`` backend from structured values, with the submitter's key or none, on a
    loop whose every connection the guard checks (``board/endpoint.py``)."""
    return build_backend(base_url=req.base_url, api_model=req.api_model, api=req.api, api_key=req.api_key,
                         max_rps=policy.max_rps, guard=guard)


def check_request(req: EvalRequest) -> None:
    """Shape checks that need no network; PrivateEvalError(422) naming the field."""
    try:
        check_base_url(req.base_url)
    except ValueError as err:
        raise PrivateEvalError(str(err), 422) from None
    if not API_MODEL_RE.match(req.api_model):
        raise PrivateEvalError("api_model may hold letters, digits and . _ : / @ + - only", 422)
    if req.api not in ("completions", "chat"):
        raise PrivateEvalError("api must be completions or chat", 422)


class PrivateEvaluator:
    def __init__(self, sessions: sessionmaker[Session], library: TaskLibrary, policy: PrivatePolicy,
                 backend_factory: BackendFactory = default_backend) -> None:
        self.sessions = sessions
        self.library = library
        self.policy = policy
        self.backend_factory = backend_factory
        self._running: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def guard(self) -> EndpointGuard:
        return EndpointGuard(self.policy.allow_private_endpoints, self.policy.allow_networks)

    def start(self, who: Principal, req: EvalRequest, *, wait: bool = False,
              local_names: frozenset[str] = frozenset()) -> list[int]:
        check_request(req)
        try:
            check_reachable(req.base_url, self.guard())
        except ValueError as err:
            raise PrivateEvalError(str(err), 422) from None
        with self._lock:
            thread = self._running.get(who.id)
            if thread is not None and thread.is_alive():
                raise PrivateEvalError("an evaluation of yours is still running; wait for it to finish", 429)
        host = urlsplit(req.base_url).hostname or ""
        with self.sessions() as s:
            bump_generation(s)  # first: concurrent claims of one name queue here (owner_of)
            owner = owner_of(s, req.model_name, set(local_names))
            if owner is not None and owner != who.id and not who.can("admin"):
                whose = "the board's operator" if owner == OPERATOR else "another submitter"
                raise PrivateEvalError(f"model name {req.model_name!r} belongs to {whose}; evaluate a model of yours", 403)
            available = private_tasks(s)
            tasks = list(req.tasks) or sorted(available)
            unknown = [t for t in tasks if t not in available]
            if unknown or not tasks:
                raise PrivateEvalError(f"no private items for {', '.join(unknown) or 'any task'}", 404)
            last = s.scalar(select(func.max(PrivateEval.created_at)).where(PrivateEval.submitter_id == who.id))
            if last is not None and self.policy.min_interval_s > 0:
                last = last if last.tzinfo else last.replace(tzinfo=utcnow().tzinfo)
                wait_s = self.policy.min_interval_s - (utcnow() - last).total_seconds()
                if wait_s > 0:
                    raise PrivateEvalError(f"rate limit: next private evaluation in {math.ceil(wait_s)} s", 429)
            plan: list[tuple[int, str, list[int]]] = []
            for task in tasks:
                items = self._unseen(s, who.id, task, self.policy.items_per_eval)
                if not items:
                    raise PrivateEvalError(
                        f"task {task}: every private item has been shown to you; ask an admin for fresh ones", 409
                    )
                ev = PrivateEval(submitter_id=who.id, model_name=req.model_name, task=task, endpoint_host=host[:300],
                                 status="queued", n=len(items))
                s.add(ev)
                s.flush()
                for item_id in items:  # counted as shown now, even if the endpoint fails later
                    s.add(PrivateExposure(submitter_id=who.id, item_id=item_id, eval_id=ev.id))
                plan.append((ev.id, task, items))
            # The full request (never the key) so an admin can see exactly what was called.
            record(s, who.name, "private.evaluate", f"model:{req.model_name}",
                   {"submitter": who.name, "submitter_id": who.id, "model": req.model_name,
                    "base_url": req.base_url, "api_model": req.api_model, "api": req.api,
                    "key_sent": bool(req.api_key), "tasks": tasks, "evals": [p[0] for p in plan]})
            s.commit()
        thread = threading.Thread(target=self._run, args=(who, req, plan), name=f"private-eval-{who.id}", daemon=True)
        with self._lock:
            self._running[who.id] = thread
        thread.start()
        if wait:
            thread.join()
        return [p[0] for p in plan]

    def _unseen(self, s: Session, submitter_id: int, task: str, k: int) -> list[int]:
        seen = select(PrivateExposure.item_id).where(PrivateExposure.submitter_id == submitter_id)
        ids = list(s.scalars(
            select(PrivateItem.id).join(PrivateSplit, PrivateItem.split_id == PrivateSplit.id)
            .where(PrivateSplit.task == task, PrivateItem.id.not_in(seen))
        ))
        if len(ids) <= k:
            return ids
        return sorted(secrets.SystemRandom().sample(ids, k))

    def _run(self, who: Principal, req: EvalRequest, plan: list[tuple[int, str, list[int]]]) -> None:
        backend = None
        guard = self.guard()
        try:
            backend = self.backend_factory(req, self.policy, guard)
            for eval_id, task, items in plan:
                self._one(backend, eval_id, task, items)
        except Exception as err:  # noqa: BLE001 - recorded on the evaluation rows
            if isinstance(err, EndpointFailed):
                reasons = err.reasons
            elif isinstance(err, GapmeterError):
                reasons = [failure_category(str(err))]
            else:
                reasons = [f"board error ({type(err).__name__})"]
            if guard.refused:
                reasons = sorted(set(reasons) | {"refused: non-public address"})
            self._fail(who, req, [p[0] for p in plan], reasons, sorted(set(guard.refused)))
        else:
            self._audit_result(who, req, [p[0] for p in plan], "complete", [], [])
        finally:
            if backend is not None and hasattr(backend, "close"):
                backend.close()

    def _one(self, backend: Any, eval_id: int, task_name: str, item_ids: list[int]) -> None:
        self._set(eval_id, status="running")
        with self.sessions() as s:
            docs = [d for (d,) in s.execute(select(PrivateItem.doc).where(PrivateItem.id.in_(item_ids)).order_by(PrivateItem.id))]
        template, shots = self.library.task(task_name, None)
        task = Task(template.config, yaml_dir=template.yaml_dir, data_dir=template.data_dir)
        task.__dict__["eval_docs"] = docs  # the private docs replace the public eval split
        plans = task.plan(num_fewshot=shots)
        requests = [r for p in plans for r in p.requests]
        responses: dict[int, Any] = {}
        failures: list[str] = []
        t0 = time.perf_counter()
        by_kind: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_kind.setdefault(r.kind, []).append(i)
        for kind, idx in by_kind.items():
            batch = [requests[i] for i in idx]

            def on_done(positions: list[int], results: list[Any], stats: Any = None, idx: list[int] = idx) -> None:
                for pos, res in zip(positions, results, strict=True):
                    responses[idx[pos]] = res
                for st in stats or ():
                    if getattr(st, "failed", False):
                        failures.append(failure_category(getattr(st, "error", None)))

            getattr(backend, {"loglikelihood": "loglikelihood", "loglikelihood_rolling": "loglikelihood_rolling",
                              "generate_until": "generate"}[kind])(batch, on_done)
        answered = sum(1 for r in responses.values() if r is not None)
        if answered != len(requests):
            raise EndpointFailed(sorted(set(failures)) or ["no valid answer"])
        grouped, k = [], 0
        for p in plans:
            grouped.append([responses[k + j] for j in range(len(p.requests))])
            k += len(p.requests)
        scores = score_task(task, plans, grouped)
        metrics = aggregate_task(task, plans, scores, 1000)
        primary = self.library.primary_metrics().get(task_name)
        chosen = next((m for m in metrics if f"{m.metric},{m.filter}" == primary), metrics[0])
        self._set(eval_id, status="complete", metric=f"{chosen.metric},{chosen.filter}", filter=chosen.filter,
                  value=chosen.value, stderr=chosen.stderr, n=chosen.n, finished_at=utcnow())
        log.info("private evaluation done", extra={"eval_id": eval_id, "task": task_name, "n": chosen.n,
                                                   "seconds": round(time.perf_counter() - t0, 3)})

    def _set(self, eval_id: int, **values: Any) -> None:
        with self.sessions() as s:
            bump_generation(s)
            ev = s.get(PrivateEval, eval_id)
            assert ev is not None
            for k, v in values.items():
                setattr(ev, k, v)
            s.commit()

    def _fail(self, who: Principal, req: EvalRequest, eval_ids: list[int], reasons: list[str], refused: list[str]) -> None:
        log.warning("private evaluation failed", extra={"evals": eval_ids, "reasons": reasons})
        with self.sessions() as s:
            bump_generation(s)
            for ev in s.scalars(select(PrivateEval).where(PrivateEval.id.in_(eval_ids))):
                if ev.status != "complete":
                    ev.status, ev.error, ev.finished_at = "failed", FAILED, utcnow()
            s.commit()
        self._audit_result(who, req, eval_ids, "failed", reasons, refused)

    def _audit_result(self, who: Principal, req: EvalRequest, eval_ids: list[int], status: str, reasons: list[str],
                      refused: list[str]) -> None:
        """One audit entry per evaluation's outcome: endpoint, model, submitter and result."""
        with self.sessions() as s:
            rows = list(s.scalars(select(PrivateEval).where(PrivateEval.id.in_(eval_ids)).order_by(PrivateEval.id)))
            results = [{"eval": e.id, "task": e.task, "status": e.status, "metric": e.metric, "value": e.value,
                        "stderr": e.stderr, "n": e.n} for e in rows]
            record(s, who.name, f"private.{status}", f"model:{req.model_name}",
                   {"submitter": who.name, "submitter_id": who.id, "model": req.model_name, "base_url": req.base_url,
                    "api_model": req.api_model, "results": results, "reasons": reasons, "refused_addresses": refused})
            s.commit()

    def delete(self, eval_id: int, actor: str) -> dict[str, Any]:
        """An admin removes an evaluation from every page; the row stays (status ``deleted``)
        with its exposures, so the items it used stay used."""
        with self.sessions() as s:
            bump_generation(s)
            ev = s.get(PrivateEval, eval_id)
            if ev is None or ev.status == "deleted":
                raise PrivateEvalError("no such private evaluation", 404)
            if ev.status in ("queued", "running"):
                raise PrivateEvalError("this evaluation is still running; delete it when it has finished", 409)
            before = eval_summary(ev)
            ev.status = "deleted"
            record(s, actor, "private.delete", f"model:{ev.model_name}", {"eval": before, "submitter_id": ev.submitter_id})
            s.commit()
            return eval_summary(ev)

    def wait_idle(self, timeout: float = 60.0) -> None:
        with self._lock:
            threads = list(self._running.values())
        for t in threads:
            t.join(timeout)


def eval_summary(e: PrivateEval) -> dict[str, Any]:
    return {"id": e.id, "model": e.model_name, "task": e.task, "status": e.status, "metric": e.metric,
            "value": e.value, "stderr": e.stderr, "n": e.n, "error": e.error, "endpoint": e.endpoint_host,
            "created_at": e.created_at.isoformat() if e.created_at else None,
            "finished_at": e.finished_at.isoformat() if e.finished_at else None}


def list_evals(session: Session, who: Principal | None) -> list[dict[str, Any]]:
    q = select(PrivateEval).order_by(PrivateEval.id.desc()).limit(500)
    if who is not None and not who.can("admin"):
        q = q.where(PrivateEval.submitter_id == who.id)
    return [eval_summary(e) for e in session.scalars(q)]


