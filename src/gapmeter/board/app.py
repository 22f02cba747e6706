"""The board's FastAPI application: the routes, middleware (access log, CSP, root path), error pages.

``create_app(BoardSettings(db_url=...))`` returns the app; ``gapmeter board`` serves it with
uvicorn. Pages are server-rendered Jinja2 (autoescaped) and every page has a JSON mirror under
``/api`` (routes in ``routes_pages.py`` and ``routes_api.py``), documented at ``/docs``. Shared
state and the auth dependencies are in ``context.py``.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from sqlalchemy import text
from starlette.datastructures import MutableHeaders

import gapmeter
from gapmeter.board import pagecache, routes_api, routes_pages, routes_private
from gapmeter.board.context import (
    HERE,
    TOKEN_COOKIE,
    BoardContext,
    BoardSettings,
    board,
    cookie_flags,
    error_response,
)

log = logging.getLogger("gapmeter.board")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(settings: BoardSettings) -> FastAPI:
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
    app.state.board = ctx = BoardContext(settings)
    ctx.cache.on_built = pagecache.warm  # pre-render the most read pages of each new snapshot
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
