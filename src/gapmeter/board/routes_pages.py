"""Server-rendered pages. Each renders the dict its ``/api`` mirror returns (``views.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from gapmeter.board import auditlog, pagecache, private, views
from gapmeter.board.app import BoardContext, board, html, principal, render_html, require, viewer
from gapmeter.board.auth import Principal
from gapmeter.board.readmodel import Snapshot
from gapmeter.board.routes_api import LeaderboardParams, is_admin, leaderboard_query

router = APIRouter(include_in_schema=False)


def who_key(who: Principal | None) -> tuple[str, str] | None:
    """What of the asker a cached page depends on (the header shows name and role)."""
    return (who.name, who.role) if who is not None else None


@router.get("/", response_class=HTMLResponse)
async def leaderboard(request: Request, p: Annotated[LeaderboardParams, Query()], who: Principal | None = Depends(viewer),
                      ctx: BoardContext = Depends(board)) -> Response:
    root = request.scope.get("root_path", "")

    def make(snap: Snapshot) -> tuple[bytes, str]:
        data = views.leaderboard(snap, leaderboard_query(p, who, snap.tasks))
        data["params"] = {k: v for k, v in p.model_dump().items() if v is not None and k != "offset"}
        _precompute_cells(data)
        return render_html(ctx, "leaderboard.html", data, who, root), "text/html; charset=utf-8"

    key = ("page:/", root, who_key(who), tuple(sorted(p.model_dump().items())))
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
    offset: Annotated[int, Query(ge=0)] = 0,
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
def login(request: Request, who: Principal | None = Depends(principal), ctx: BoardContext = Depends(board)) -> HTMLResponse:
    return html(ctx, request, "login.html", {}, who)
