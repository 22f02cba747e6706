"""The board's shared state and request dependencies: settings, the context every route reads
(store sessions, snapshot cache, task library, templates, executors), authentication
(``principal``, ``viewer``, ``require``), error responses and page rendering.

Routes (``routes_api``, ``routes_pages``, ``routes_private``) and ``pagecache`` import it;
``app.create_app`` assembles them into the FastAPI app.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

import gapmeter
from gapmeter.board.auth import Principal, TokenChecker
from gapmeter.board.private import PrivateEvaluator, PrivatePolicy, default_backend
from gapmeter.board.readmodel import SnapshotCache, bump_generation
from gapmeter.board.submissions import init_worker
from gapmeter.board.tasklib import TaskLibrary
from gapmeter.store.db import open_store

HERE = Path(__file__).parent
TOKEN_COOKIE = "gapmeter_token"


@dataclass
class BoardSettings:
    db_url: str
    root_path: str = ""
    require_token: bool = False  # True: viewing needs a viewer (or better) token
    max_upload_bytes: int = 64 * 1024 * 1024
    max_samples: int = 200_000
    private: PrivatePolicy = field(default_factory=PrivatePolicy)
    data_dir: Path | None = None
    include_path: tuple[Path, ...] = ()
    backend_factory: Any = default_backend
    cache_seconds: float = 0.0  # pages may lag writes by up to twice this (0: always current)
    submission_processes: int = 0  # > 0: re-score uploads in this many processes (0: threads)
    # task -> "metric,filter" the leaderboard shows and ranks it by (e.g. a judge's
    # "judge_score,none"), over the task's first declared metric
    metrics: dict[str, str] = field(default_factory=dict)


class BoardContext:
    def __init__(self, settings: BoardSettings) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = open_store(settings.db_url)
        engine = self.sessions.kw["bind"]
        if engine.dialect.name == "sqlite":
            # Many request threads write (submissions, evaluations): wait for SQLite's write lock
            # instead of failing after its 5 s default.
            @event.listens_for(engine, "connect")
            def _busy_timeout(dbapi_conn, _record) -> None:  # noqa: ANN001
                dbapi_conn.execute("PRAGMA busy_timeout=60000")

            engine.dispose()  # connections opened before the listener get it too
        self.library = TaskLibrary(settings.include_path, settings.data_dir)
        shown = {**self.library.primary_metrics(), **settings.metrics}
        self.cache = SnapshotCache(shown, settings.cache_seconds, self.sessions, chosen_metrics=settings.metrics)
        self.tokens = TokenChecker()
        # Submissions use their own threads, not the request thread pool: re-scoring is CPU work
        # (two threads: more only fight over the GIL), and on SQLite one writer thread writes them
        # in turn (queued uploads then wait without holding request threads that pages need).
        # With submission_processes > 0 (``gapmeter board``'s default), in other processes: the
        # request threads then never wait for the GIL behind re-scoring.
        self.validators: Executor
        if settings.submission_processes > 0:
            self.validators = ProcessPoolExecutor(
                settings.submission_processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(settings.include_path, settings.data_dir, settings.max_samples),
            )
            self.validators.submit(int)  # start the processes now, not on the first upload
        else:
            self.validators = ThreadPoolExecutor(max_workers=2, thread_name_prefix="board-validate")
        self.writer = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="board-write")
                       if engine.dialect.name == "sqlite" else None)
        self.private = PrivateEvaluator(self.sessions, self.library, settings.private, settings.backend_factory)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self.templates = Jinja2Templates(env=env)
        self.templates.env.globals["version"] = gapmeter.__version__
        self.templates.env.filters["num"] = _num
        self.templates.env.filters["pct"] = _pct
        # A name as one path segment: "/" encoded too (Jinja's urlencode keeps it), so a name
        # from the store such as "a/../../admin" cannot make a link that resolves elsewhere.
        self.templates.env.filters["pathpart"] = lambda v: quote(str(v), safe="")
        with self.sessions() as s:  # the write counter exists before the first concurrent write
            bump_generation(s)
            s.commit()


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int | float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


# The dependencies below are coroutines: FastAPI runs a plain ``def`` dependency in the thread
# pool, a hop per dependency per request that the cached pages (``pagecache``) would pay under load.
async def board(request: Request) -> BoardContext:
    return request.app.state.board


def _credential(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(401, "Authorization header must be 'Bearer <token>'")
        return value.strip()
    if request.method not in ("GET", "HEAD"):
        return None  # the cookie only lets a browser *view*; changes need the header (no CSRF)
    return request.cookies.get(TOKEN_COOKIE) or None


async def principal(request: Request, ctx: BoardContext = Depends(board)) -> Principal | None:
    """Who is asking: None for anonymous; 401 for a wrong, revoked or expired token (a bad
    cookie is cleared with that 401, so the next page is viewed signed out)."""
    secret = _credential(request)
    if secret is None:
        return None
    who = await run_in_threadpool(_check_token, ctx, secret)
    if who is None:
        raise HTTPException(401, "invalid, revoked or expired token")
    request.state.actor = who.name
    return who


async def lenient_principal(request: Request, ctx: BoardContext = Depends(board)) -> Principal | None:
    """As :func:`principal`, but a bad cookie is anonymous: /login and /logout must work with a
    stale cookie, or a user could never sign out."""
    try:
        return await principal(request, ctx)
    except HTTPException:
        return None


def cookie_flags(request: Request) -> dict[str, Any]:
    """The token cookie's attributes: set by the server only, never readable by scripts, sent
    only to this board's path, only same-site, and only over https when the board is served so
    (the scheme as seen after a trusted proxy's X-Forwarded-Proto)."""
    root = request.scope.get("root_path", "") or "/"
    return {"httponly": True, "secure": request.url.scheme == "https", "samesite": "strict", "path": root}


def _check_token(ctx: BoardContext, secret: str) -> Principal | None:
    with ctx.sessions() as s:
        return ctx.tokens.check(s, secret)


async def viewer(request: Request, who: Principal | None = Depends(principal), ctx: BoardContext = Depends(board)) -> Principal | None:
    if ctx.settings.require_token and who is None:
        raise HTTPException(401, "this board needs a token to view (Authorization: Bearer <token>)")
    return who


def require(role: str):  # noqa: ANN201 - a FastAPI dependency
    async def dep(who: Principal | None = Depends(principal)) -> Principal:
        if who is None:
            raise HTTPException(401, f"a {role} token is required (Authorization: Bearer <token>)")
        if not who.can(role):
            raise HTTPException(403, f"this needs the {role} role; your token is a {who.role}")
        return who

    return dep


def is_api(request: Request) -> bool:
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.startswith("/api/") or path in ("/health", "/openapi.json")


def error_response(request: Request, status: int, message: str) -> Response:
    if is_api(request) or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    ctx: BoardContext = request.app.state.board
    return ctx.templates.TemplateResponse(
        request, "error.html",
        {"status": status, "message": message, "root": request.scope.get("root_path", ""), "who": None},
        status_code=status,
    )


def html(ctx: BoardContext, request: Request, template: str, data: dict[str, Any], who: Principal | None) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return ctx.templates.TemplateResponse(request, template, {"d": data, "root": root, "who": who})


def render_html(ctx: BoardContext, template: str, data: dict[str, Any], who: Principal | None, root: str) -> bytes:
    """A page as bytes, for ``pagecache`` (the templates never read ``request``)."""
    page = ctx.templates.env.get_template(template).render({"d": data, "root": root, "who": who, "request": None})
    return page.encode("utf-8")
