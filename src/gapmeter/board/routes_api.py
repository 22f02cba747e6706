"""``/api/...``: the JSON mirror of every page, submissions, private evaluations, admin actions."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select

from gapmeter.board import auditlog, pagecache, private, views
from gapmeter.board.auth import Principal, create_token, revoke_tokens
from gapmeter.board.context import BoardContext, board, principal, require, viewer
from gapmeter.board.names import normalize_model_name
from gapmeter.board.readmodel import Snapshot, bump_generation
from gapmeter.board.submission_store import store
from gapmeter.board.submissions import (
    SubmissionError,
    ValidatedRun,
    parse_payload,
    validate,
    validate_upload,
)
from gapmeter.board.weighting import Weights
from gapmeter.store.board_tables import (
    ROLES,
    BoardAnnotation,
    BoardEntry,
    BoardSubmission,
    BoardToken,
)
from gapmeter.store.models import Run

router = APIRouter(prefix="/api")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]  # text that goes into a database column
# Model names: normalised, then checked (names.py); the stored form is the normalised one.
ModelName = Annotated[str, AfterValidator(normalize_model_name), Field(min_length=1, max_length=400)]
# Integers that reach SQL: databases hold 64-bit signed integers; larger ones are a 422, not a 500.
MAX_ID = 2**63 - 1
MAX_OFFSET = 10**9


# ------------------------------------------------------------------------------ query parsing
class LeaderboardParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tasks: str = Field("", max_length=4000, description="comma-separated columns to keep (default: all)")
    q: str = Field("", max_length=200, description="substring of the model name")
    sort: str = Field("rank", max_length=250, description=f"{', '.join(views.SORT_KEYS)} or task:<name>")
    desc: bool | None = Field(None, description="descending (default: the natural direction of `sort`)")
    w_quality: float = Field(1.0, ge=0, le=100, description="weight of quality in the composite rank")
    w_cost: float = Field(0.0, ge=0, le=100, description="weight of cost (cheaper is better)")
    w_speed: float = Field(0.0, ge=0, le=100, description="weight of speed (faster is better)")
    limit: int = Field(50, ge=1, le=5000, description="rows per page")
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    flagged: bool = Field(False, description="only models the audit flagged")
    show_hidden: bool = Field(False, description="admins only: include hidden entries")
    metric: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=100,
        description="TASK=METRIC[,FILTER]: show and rank TASK by this metric, e.g. support_faq=judge_score,none "
                    "(repeatable; default: the board's choice, `gapmeter board --metric`)")

    def cache_key(self) -> tuple[Any, ...]:
        """The parameters as a hashable key (page caches: every parameter, the metric choice too)."""
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in self.model_dump().items()))


def leaderboard_query(p: LeaderboardParams, who: Principal | None, snap: Snapshot) -> views.LeaderboardQuery:
    known_tasks = snap.tasks
    if p.sort not in views.SORT_KEYS and not (p.sort.startswith("task:") and p.sort[5:] in known_tasks):
        raise HTTPException(422, f"invalid parameter sort: use {', '.join(views.SORT_KEYS)} or task:<a shown task>")
    tasks = tuple(t.strip() for t in p.tasks.split(",") if t.strip())
    unknown = [t for t in tasks if t not in known_tasks]
    if unknown:
        raise HTTPException(422, f"invalid parameter tasks: no scores for {', '.join(unknown[:5])}")
    if p.show_hidden and (who is None or not who.can("admin")):
        raise HTTPException(403, "show_hidden needs the admin role")
    try:
        metrics = views.metric_choices(snap, p.metric)
    except views.MetricChoiceError as e:
        raise HTTPException(400, str(e)) from None
    return views.LeaderboardQuery(
        tasks=tasks, q=p.q, sort=p.sort, desc=p.desc, weights=Weights(p.w_quality, p.w_cost, p.w_speed),
        limit=p.limit, offset=p.offset, include_hidden=p.show_hidden, flagged_only=p.flagged, metrics=metrics,
    )


def is_admin(who: Principal | None) -> bool:
    return who is not None and who.can("admin")


# --------------------------------------------------------------------------------- read API
def json_bytes(data: Any) -> bytes:
    """As FastAPI's JSONResponse would encode ``data`` (``jsonable_encoder`` only for what plain
    ``json`` cannot encode: it walks every value in Python, several times slower)."""
    return json.dumps(data, default=jsonable_encoder, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


@router.get("/leaderboard", tags=["pages"], summary="The leaderboard (mirror of /)", response_model=dict[str, Any])
async def api_leaderboard(request: Request, p: Annotated[LeaderboardParams, Query()],
                          who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> Response:
    def make(snap: Snapshot) -> tuple[bytes, str]:
        return json_bytes(views.leaderboard(snap, leaderboard_query(p, who, snap))), "application/json"

    # The JSON depends on the asker only through show_hidden (admins), checked in leaderboard_query.
    key = ("api:/leaderboard", who is not None and who.can("admin"), p.cache_key())
    return await pagecache.respond(request, ctx, key, make)


@router.get("/models/{name:path}", tags=["pages"], summary="One model (mirror of /models/{name})")
def api_model(name: str, who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        data = views.model_page(ctx.cache.get(s), name, include_hidden=is_admin(who))
    if data is None:
        raise HTTPException(404, "no such model")
    return data


@router.get("/runs/{run_id}", tags=["pages"], summary="One run: config and metrics (mirror of /runs/{id})")
def api_run(run_id: str, who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        data = views.run_page(s, ctx.cache.get(s), run_id, include_hidden=is_admin(who))
    if data is None:
        raise HTTPException(404, "no such run")
    return data


@router.get("/runs/{run_id}/samples", tags=["pages"], summary="Per-item drill-down of a run")
def api_samples(
    run_id: str,
    task: Annotated[str, Query(max_length=200)],
    outcome: Literal["all", "correct", "incorrect"] = "all",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    who: Principal | None = Depends(viewer),
    ctx: BoardContext = Depends(board),
) -> dict[str, Any]:
    with ctx.sessions() as s:
        data = views.run_samples(s, ctx.cache.get(s), run_id, task, outcome=outcome, offset=offset, limit=limit,
                                 include_hidden=is_admin(who))
    if data is None:
        raise HTTPException(404, "no such run or task")
    return data


@router.get("/pareto", tags=["pages"], summary="Quality vs cost and vs latency (mirror of /pareto)",
            response_model=dict[str, Any])
async def api_pareto(request: Request, who: Principal | None = Depends(viewer),
                     ctx: BoardContext = Depends(board)) -> Response:
    def make(snap: Snapshot) -> tuple[bytes, str]:
        return json_bytes(views.pareto_page(snap)), "application/json"

    return await pagecache.respond(request, ctx, ("api:/pareto",), make)


@router.get("/compare", tags=["pages"], summary="Two models, paired per-item differences (mirror of /compare)")
def api_compare(a: Annotated[str, Query(max_length=200)], b: Annotated[str, Query(max_length=200)],
                who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        data = views.compare_page(s, ctx.cache.get(s), a, b)
    if data is None:
        raise HTTPException(404, "no such model")
    return data


@router.get("/tasks", tags=["pages"], summary="Tasks this board accepts, with versions and private item counts")
def api_tasks(who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    reg = ctx.library.registry
    with ctx.sessions() as s:
        counts = private.private_tasks(s)
    return {
        "tasks": [{"name": n, "version": ctx.library.version(n), "output_type": e.config.output_type,
                   "private_items": counts.get(n, 0)} for n, e in sorted(reg.tasks.items())],
        "groups": [{"name": n, "version": ctx.library.version(n)} for n in sorted(reg.groups)],
    }


@router.get("/whoami", tags=["auth"], summary="The token's name and role")
def whoami(who: Principal | None = Depends(principal)) -> dict[str, Any]:
    return {"name": who.name, "role": who.role} if who else {"name": None, "role": None}


# ------------------------------------------------------------------------------ submissions
async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise SubmissionError(f"upload too large: {int(declared)} bytes > {limit} allowed", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise SubmissionError(f"upload too large: more than {limit} bytes", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(body, limit + 1)  # a gzip bomb stops at the limit
            if len(out) > limit or d.unconsumed_tail:
                raise SubmissionError(f"upload too large once decompressed: more than {limit} bytes", 413)
            body = out
        except (zlib.error, gzip.BadGzipFile):
            raise SubmissionError("malformed upload: Content-Encoding is gzip but the body is not", 400) from None
    return body


def _parse_and_validate(body: bytes, ctx: BoardContext) -> ValidatedRun:
    return validate(parse_payload(body), ctx.library, max_samples=ctx.settings.max_samples)


def _store(ctx: BoardContext, run: ValidatedRun, who: Principal) -> Any:
    with ctx.sessions() as s:
        local = frozenset(ctx.cache.get(s).models)  # a local run's name belongs to the operator
    return store(ctx.sessions, run, who, run.content_sha, local)


@router.post("/submissions", tags=["submissions"], status_code=201,
             summary="Upload a run (gapmeter submit); validated and re-scored by the board")
async def submit(request: Request, who: Principal = Depends(require("submitter")),
                 ctx: BoardContext = Depends(board)) -> Any:
    from fastapi.responses import JSONResponse

    try:
        body = await _read_body(request, ctx.settings.max_upload_bytes)
        loop = asyncio.get_running_loop()  # parsing and re-scoring: CPU work, off the event loop
        if isinstance(ctx.validators, ProcessPoolExecutor):
            run = await loop.run_in_executor(ctx.validators, validate_upload, body)
        else:
            run = await loop.run_in_executor(ctx.validators, partial(_parse_and_validate, body, ctx))
        if ctx.writer is not None:  # SQLite: one writer thread
            accepted = await loop.run_in_executor(ctx.writer, _store, ctx, run, who)
        else:
            accepted = await run_in_threadpool(_store, ctx, run, who)
    except SubmissionError as err:
        import logging

        logging.getLogger("gapmeter.board").info("submission refused", extra={"actor": who.name, "reason": str(err)})
        return JSONResponse({"error": str(err), "status": err.status}, status_code=err.status)
    return JSONResponse(
        {"submission_id": accepted.submission_id, "run_id": accepted.run_id, "model": accepted.model_name,
         "duplicate": accepted.duplicate, "checks": accepted.checks,
         "url": f"/runs/{accepted.run_id}"},  # relative to the board URL
        status_code=200 if accepted.duplicate else 201,
    )


@router.get("/submissions", tags=["submissions"], summary="Your submissions (admins: everyone's)")
def list_submissions(who: Principal = Depends(require("submitter")), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    q = select(BoardSubmission).order_by(BoardSubmission.id.desc()).limit(1000)
    if not who.can("admin"):
        q = q.where(BoardSubmission.submitter_id == who.id)
    with ctx.sessions() as s:
        rows = [{"id": r.id, "run_id": r.run_id, "model": r.model_name, "tasks": r.n_tasks, "samples": r.n_samples,
                 "created_at": r.created_at.isoformat() if r.created_at else None} for r in s.scalars(q)]
    return {"submissions": rows}


# ------------------------------------------------------------------------------------ admin
class HideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: bool = True
    reason: Text = Field("", max_length=2000)


class AnnotationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_name: Text = Field(min_length=1, max_length=200)  # an existing name, as the board shows it
    text: Text = Field(min_length=1, max_length=5000)
    run_id: Text | None = Field(None, max_length=64)


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=100)
    role: Literal["viewer", "submitter", "admin"] = "submitter"
    expires_in_days: float | None = Field(None, gt=0, le=36500, description="default: never expires")


@router.post("/admin/runs/{run_id}/visibility", tags=["admin"], summary="Hide or show a run on the board")
def set_visibility(run_id: str, body: HideBody, who: Principal = Depends(require("admin")),
                   ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        bump_generation(s)
        run = s.get(Run, run_id)
        if run is None:
            raise HTTPException(404, "no such run")
        entry = s.get(BoardEntry, run_id)
        if entry is None:
            from gapmeter.board.readmodel import derive_model_name

            entry = BoardEntry(run_id=run_id, model_name=derive_model_name(run), source="local")
            s.add(entry)
        entry.hidden, entry.hidden_reason = int(body.hidden), body.reason
        auditlog.record(s, who.name, "run.hide" if body.hidden else "run.show", f"run:{run_id}",
                        {"model": entry.model_name, "reason": body.reason})
        s.commit()
        return {"run_id": run_id, "model": entry.model_name, "hidden": body.hidden}


@router.post("/admin/annotations", tags=["admin"], status_code=201, summary="Annotate a model")
def annotate(body: AnnotationBody, who: Principal = Depends(require("admin")),
             ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        bump_generation(s)
        row = BoardAnnotation(model_name=body.model_name, run_id=body.run_id, text=body.text, author=who.name)
        s.add(row)
        s.flush()
        auditlog.record(s, who.name, "annotation.add", f"model:{body.model_name}", {"id": row.id, "text": body.text})
        s.commit()
        return {"id": row.id, "model": body.model_name, "text": body.text}


@router.delete("/admin/annotations/{annotation_id}", tags=["admin"], summary="Remove an annotation")
def delete_annotation(annotation_id: Annotated[int, Path(ge=1, le=MAX_ID)], who: Principal = Depends(require("admin")),
                      ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        bump_generation(s)
        row = s.get(BoardAnnotation, annotation_id)
        if row is None:
            raise HTTPException(404, "no such annotation")
        auditlog.record(s, who.name, "annotation.delete", f"model:{row.model_name}", {"id": row.id, "text": row.text})
        s.delete(row)
        s.commit()
        return {"deleted": annotation_id}


@router.get("/admin/audit-log", tags=["admin"], summary="Every change made through the board, newest first")
def audit_log(limit: Annotated[int, Query(ge=1, le=1000)] = 200,
              offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
              who: Principal = Depends(require("admin")), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        return {"entries": auditlog.entries(s, limit=limit, offset=offset)}


@router.get("/admin/tokens", tags=["admin"], summary="Tokens (names, roles, prefixes; never secrets)")
def list_tokens(who: Principal = Depends(require("admin")), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        return {"tokens": [
            {"id": t.id, "name": t.name, "role": t.role, "prefix": t.prefix,
             "created_at": t.created_at.isoformat() if t.created_at else None,
             "revoked": t.revoked_at is not None} for t in s.scalars(select(BoardToken).order_by(BoardToken.id))
        ]}


@router.post("/admin/tokens", tags=["admin"], status_code=201, summary="Create a token (the secret is shown once)")
def api_create_token(body: TokenBody, who: Principal = Depends(require("admin")),
                     ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    assert body.role in ROLES
    with ctx.sessions() as s:
        row, secret = create_token(s, body.name, body.role, actor=who.name, expires_in_days=body.expires_in_days)
        s.commit()
        return {"id": row.id, "name": row.name, "role": row.role, "token": secret,
                "expires_at": row.expires_at.isoformat() if row.expires_at else None}


@router.delete("/admin/tokens/{token_id}", tags=["admin"], summary="Revoke a token")
def api_revoke_token(token_id: Annotated[int, Path(ge=1, le=MAX_ID)], who: Principal = Depends(require("admin")),
                     ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        rows = revoke_tokens(s, actor=who.name, token_id=token_id)
        if not rows:
            raise HTTPException(404, "no such active token")
        s.commit()
        return {"revoked": token_id}
