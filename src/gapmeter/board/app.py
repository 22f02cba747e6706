"""The board's FastAPI application: settings, shared state, auth, middleware, error pages.

``create_app(BoardSettings(db_url=...))`` returns the app; ``gapmeter board`` serves it with
uvicorn. Pages are server-rendered Jinja2 (autoescaped) and every page has a JSON mirror under
``/api`` (routes in ``routes_pages.py`` and ``routes_api.py``), documented at ``/docs``.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import MutableHeaders

import gapmeter
from gapmeter.board import pagecache
from gapmeter.board.auth import Principal, TokenChecker
from gapmeter.board.private import PrivateEvaluator, PrivatePolicy, default_backend
from gapmeter.board.readmodel import SnapshotCache, bump_generation
from gapmeter.board.submissions import init_worker
from gapmeter.board.tasklib import TaskLibrary
from gapmeter.store.db import open_store

log = logging.getLogger("gapmeter.board")
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
        self.cache = SnapshotCache(self.library.primary_metrics(), settings.cache_seconds, self.sessions)
        self.cache.on_built = pagecache.warm
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


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(settings: BoardSettings) -> FastAPI:
    from gapmeter.board import routes_api, routes_pages, routes_private

    app = FastAPI(
        docs_url=None, redoc_url=None,  # FastAPI's pages load scripts from a CDN: /docs is ours (routes_pages)
        title="gapmeter board",
        version=gapmeter.__version__,
        description=(
            "Leaderboard with error bars, tie-aware ranks, cost, speed, audit verdicts and private "
            "held-out evaluation. Every page has a JSON mirror under /api. Authenticate with "
            "`Authorization: Bearer <token>` (tokens: `gapmeter board token create`)."
        ),
    )
    app.state.board = BoardContext(settings)
    if settings.root_path:
        app.add_middleware(RootPath, root_path=settings.root_path)

    app.add_middleware(AccessLog)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        resp = error_response(request, exc.status_code, str(exc.detail))
        if exc.status_code == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
            if TOKEN_COOKIE in request.cookies and "authorization" not in request.headers:
                resp.delete_cookie(TOKEN_COOKIE, **cookie_flags(request))  # a stale sign-in: forget it
        return resp

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", None) or "not found"
        return error_response(request, 404, str(detail))

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": ("request",), "msg": "invalid"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "path", "body"))
        return error_response(request, 422, f"invalid parameter {where or 'request'}: {first.get('msg')}")

    @app.get("/health", tags=["meta"], summary="Liveness and database check")
    def health(ctx: BoardContext = Depends(board)) -> dict[str, Any]:
        with ctx.sessions() as s:
            s.execute(text("SELECT 1"))
            from gapmeter.store.migrate import current_revision, head_revision

            rev = current_revision(s.connection())
        return {"status": "ok", "version": gapmeter.__version__, "schema": rev, "schema_head": head_revision(),
                "database": ctx.sessions.kw["bind"].dialect.name}

    plotly_js = _plotly_js()

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        allowed = {"board.css": "text/css", "board.js": "text/javascript"}
        if name not in allowed:
            raise HTTPException(404, "not found")
        return FileResponse(HERE / "static" / name, media_type=allowed[name], headers={"Cache-Control": "public, max-age=3600"})

    app.include_router(routes_api.router)
    app.include_router(routes_private.router)
    app.include_router(routes_pages.router)
    return app


class AccessLog:
    """Request id, the NUL check, a 500 page for unhandled errors, security headers and one JSON
    log line per request. Plain ASGI: Starlette's ``@app.middleware("http")`` costs a task group
    and memory streams per request, which showed up under load (bench/board_load.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        rid = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex[:16]
        request.state.request_id = rid
        request.state.actor = "-"
        t0 = time.perf_counter()
        status = 500
        started = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                headers.setdefault("Content-Security-Policy", CSP)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        try:
            try:
                raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
                if b"%00" in raw or b"\x00" in raw:  # no database takes NUL in text; refuse early
                    await error_response(request, 400, "NUL bytes are not allowed in a URL")(scope, receive, send_with_headers)
                else:
                    await self.app(scope, receive, send_with_headers)
            except Exception:  # noqa: BLE001 - answered here so the connection stays usable
                # Never echo internals (they could contain data); the request id finds the log line.
                log.exception("unhandled error", extra={"request_id": rid})
                if started:  # the answer is on its way: nothing sensible to add
                    return
                status = 500
                await error_response(request, 500, f"internal error (request id {rid})")(scope, receive, send_with_headers)
        finally:
            log.info(
                "request",
                extra={"request_id": rid, "method": request.method, "path": request.url.path,
                       "status": status, "ms": round(1000 * (time.perf_counter() - t0), 2),
                       "actor": getattr(request.state, "actor", "-"),
                       "client": request.client.host if request.client else None},
            )


class RootPath:
    """Serve under a URL prefix (behind a reverse proxy): sets the ASGI ``root_path`` unless the
    server already did (``uvicorn --root-path``). Links, OpenAPI ``servers`` and routing use it;
    requests arrive with the prefix stripped by the proxy or not, both work."""

    def __init__(self, app: Any, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            scope = dict(scope, root_path=self.root_path)
        await self.app(scope, receive, send)


def _plotly_js() -> Path:
    """plotly.js as shipped inside the installed ``plotly`` Python package (no CDN)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():  # pragma: no cover - a broken plotly install
        raise RuntimeError(f"plotly.min.js not found at {path}")
    return path


def html(ctx: BoardContext, request: Request, template: str, data: dict[str, Any], who: Principal | None) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return ctx.templates.TemplateResponse(request, template, {"d": data, "root": root, "who": who})


def render_html(ctx: BoardContext, template: str, data: dict[str, Any], who: Principal | None, root: str) -> bytes:
    """A page as bytes, for ``pagecache`` (the templates never read ``request``)."""
    page = ctx.templates.env.get_template(template).render({"d": data, "root": root, "who": who, "request": None})
    return page.encode("utf-8")
