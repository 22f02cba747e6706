"""Server-rendered pages. Each renders the dict its ``/api`` mirror returns (``views.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gapmeter.board import auditlog, pagecache, private, views
from gapmeter.board.auth import Principal
from gapmeter.board.context import (
    TOKEN_COOKIE,
    BoardContext,
    board,
    cookie_flags,
    html,
    lenient_principal,
    render_html,
    require,
    viewer,
)
from gapmeter.board.readmodel import Snapshot
from gapmeter.board.routes_api import LeaderboardParams, is_admin, leaderboard_query
from gapmeter.store.models import utcnow

router = APIRouter(include_in_schema=False)
COOKIE_MAX_AGE_S = 30 * 86400  # a browser sign-in lasts 30 days at most (less if the token expires sooner)


def who_key(who: Principal | None) -> tuple[str, str] | None:
    """What of the asker a cached page depends on (the header shows name and role)."""
    return (who.name, who.role) if who is not None else None


@router.get("/", response_class=HTMLResponse)
async def leaderboard(request: Request, p: Annotated[LeaderboardParams, Query()], who: Principal | None = Depends(viewer),
                      ctx: BoardContext = Depends(board)) -> Response:
    root = request.scope.get("root_path", "")

    def make(snap: Snapshot) -> tuple[bytes, str]:
        data = views.leaderboard(snap, leaderboard_query(p, who, snap))
        data["params"] = {k: v for k, v in p.model_dump().items() if v is not None and k not in ("offset", "metric")}
        # The metric choice, kept by the page's links and form (a repeatable parameter).
        data["metric_query"] = "".join(f"&metric={quote(m, safe='')}" for m in p.metric)
        data["metric_values"] = list(p.metric)
        _precompute_cells(data)
        return render_html(ctx, "leaderboard.html", data, who, root), "text/html; charset=utf-8"

    key = ("page:/", root, who_key(who), p.cache_key())
    return await pagecache.respond(request, ctx, key, make)


def _precompute_cells(data: dict[str, Any]) -> None:
    """Score cells formatted in Python: 50 rows x 20 tasks through Jinja filters costs ~10x more."""
    task_q = {t: quote(t, safe="") for t in data["tasks"]}
    for row in data["rows"]:
        cells = []
        for t in data["tasks"]:
            s = row["scores"][t]
            if s is None or s["value"] is None:
                cells.append((t, "", None, None, None, None))
                continue
            half = f"{50 * (s['ci95'][1] - s['ci95'][0]):.1f}" if s["ci95"] else None
            href = f"/runs/{quote(s['run_id'], safe='')}?task={task_q[t]}"
            cells.append((t, repr(s["value"]), f"{100 * s['value']:.1f}", half, s["n"], href))
        row["cells"] = cells


@router.get("/models/{name:path}", response_class=HTMLResponse)
def model(request: Request, name: str, who: Principal | None = Depends(viewer),
          ctx: BoardContext = Depends(board)) -> HTMLResponse:
    with ctx.sessions() as s:
        data = views.model_page(ctx.cache.get(s), name, include_hidden=is_admin(who))
    if data is None:
        raise HTTPException(404, "no such model")
    return html(ctx, request, "model.html", data, who)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(
    request: Request,
    run_id: str,
    task: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Literal["all", "correct", "incorrect"] = "all",
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 25,
    who: Principal | None = Depends(viewer),
    ctx: BoardContext = Depends(board),
) -> HTMLResponse:
    with ctx.sessions() as s:
        snap = ctx.cache.get(s)
        data = views.run_page(s, snap, run_id, include_hidden=is_admin(who))
        if data is None:
            raise HTTPException(404, "no such run")
        chosen = task if task is not None else (data["tasks"][0] if data["tasks"] else None)
        samples: dict[str, Any] | None = None
        if chosen is not None:
            samples = views.run_samples(s, snap, run_id, chosen, outcome=outcome, offset=offset, limit=limit,
                                        include_hidden=is_admin(who))
            if samples is None:
                raise HTTPException(404, "no such task in this run")
    data["samples"] = samples
    return html(ctx, request, "run.html", data, who)


@router.get("/pareto", response_class=HTMLResponse)
async def pareto(request: Request, who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> Response:
    root = request.scope.get("root_path", "")

    def make(snap: Snapshot) -> tuple[bytes, str]:
        return render_html(ctx, "pareto.html", views.pareto_page(snap), who, root), "text/html; charset=utf-8"

    return await pagecache.respond(request, ctx, ("page:/pareto", root, who_key(who)), make)


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request, a: Annotated[str | None, Query(max_length=200)] = None,
            b: Annotated[str | None, Query(max_length=200)] = None, who: Principal | None = Depends(viewer),
            ctx: BoardContext = Depends(board)) -> HTMLResponse:
    with ctx.sessions() as s:
        snap = ctx.cache.get(s)
        names = sorted(m.name for m in snap.models.values() if not m.hidden)
        data: dict[str, Any] = {"a": a, "b": b, "models": names, "tasks": None}
        if a and b:
            result = views.compare_page(s, snap, a, b)
            if result is None:
                raise HTTPException(404, "no such model")
            data = result
    return html(ctx, request, "compare.html", data, who)


@router.get("/admin", response_class=HTMLResponse)
def admin(request: Request, who: Principal = Depends(require("admin")), ctx: BoardContext = Depends(board)) -> HTMLResponse:
    with ctx.sessions() as s:
        data = {"log": auditlog.entries(s, limit=200), "splits": private.list_splits(s),
                "evals": private.list_evals(s, who)}
    return html(ctx, request, "admin.html", data, who)


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, who: Principal | None = Depends(lenient_principal),
          ctx: BoardContext = Depends(board)) -> HTMLResponse:
    resp = html(ctx, request, "login.html", {"status": None}, who)
    if who is None and TOKEN_COOKIE in request.cookies and "authorization" not in request.headers:
        resp.delete_cookie(TOKEN_COOKIE, **cookie_flags(request))  # stale or revoked: forget it
    return resp


def _same_origin(request: Request) -> None:
    """Sign-in forms are posted by this board's own pages only (no login CSRF)."""
    origin = request.headers.get("origin")
    # Behind a reverse proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host.
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    if origin and origin != "null" and urlsplit(origin).netloc not in hosts - {""}:
        raise HTTPException(403, "cross-site form posts are not accepted")


@router.post("/login", response_class=HTMLResponse)
async def login_post(request: Request, ctx: BoardContext = Depends(board)) -> Response:
    """The sign-in form: the server checks the token and sets the cookie (HttpOnly: no script,
    including an injected one, can read it). A token in a cookie only lets a browser view."""
    _same_origin(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 4096:
            raise HTTPException(413, "sign-in form too large")
    token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
    who = await run_in_threadpool(_check, ctx, token) if token else None
    if who is None:
        resp = html(ctx, request, "login.html", {"status": "That token is not valid (wrong, revoked or expired)."}, None)
        resp.status_code = 401
        return resp
    root = request.scope.get("root_path", "")
    resp = RedirectResponse(f"{root}/login", status_code=303)
    max_age = COOKIE_MAX_AGE_S
    if who.expires_at is not None:  # the cookie never outlives its token
        max_age = max(0, min(max_age, int((who.expires_at - utcnow()).total_seconds())))
    resp.set_cookie(TOKEN_COOKIE, token, max_age=max_age, **cookie_flags(request))
    return resp


@router.post("/logout")
def logout(request: Request) -> Response:
    _same_origin(request)
    resp = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
    resp.delete_cookie(TOKEN_COOKIE, **cookie_flags(request))
    return resp


def _check(ctx: BoardContext, token: str) -> Principal | None:
    with ctx.sessions() as s:
        return ctx.tokens.check(s, token)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request, who: Principal | None = Depends(viewer), ctx: BoardContext = Depends(board)) -> HTMLResponse:
    """The API reference, rendered here from the OpenAPI schema: no CDN and no inline script,
    so it works under the board's Content-Security-Policy (FastAPI's Swagger UI does neither)."""
    return html(ctx, request, "docs.html", api_reference(request.app.openapi()), who)


def api_reference(schema: dict[str, Any]) -> dict[str, Any]:
    """Operations grouped by tag, each with its parameters and JSON body fields."""
    components = schema.get("components", {}).get("schemas", {})
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            params = [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                       "type": _type(p.get("schema", {})), "description": p.get("description") or
                       p.get("schema", {}).get("description", "")} for p in op.get("parameters", [])]
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = components.get(body.get("$ref", "").rsplit("/", 1)[-1], {}) if "$ref" in body else {}
            fields = [{"name": n, "required": n in ref.get("required", []), "type": _type(f),
                       "description": f.get("description", "")} for n, f in ref.get("properties", {}).items()]
            groups.setdefault((op.get("tags") or ["other"])[0], []).append(
                {"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                 "description": op.get("description", ""), "params": params, "body": fields})
    return {"title": schema.get("info", {}).get("title", ""), "version": schema.get("info", {}).get("version", ""),
            "groups": sorted(groups.items())}


def _type(s: dict[str, Any]) -> str:
    if "anyOf" in s:
        return " | ".join(_type(x) for x in s["anyOf"])
    if "enum" in s:
        return " | ".join(map(str, s["enum"]))
    if s.get("type") == "array":
        return f"list[{_type(s.get('items', {}))}]"
    return str(s.get("type") or s.get("$ref", "").rsplit("/", 1)[-1] or "any")
