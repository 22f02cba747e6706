"""``gapmeter board``: serve the board; ``gapmeter board token create|revoke|list``; and
``gapmeter board private mark|generate`` for held-out items (run on the board's host)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gapmeter.errors import GapmeterError

board_app = typer.Typer(
    add_completion=False, invoke_without_command=True,
    help="Serve the web board (leaderboard, submissions, private held-out items) and manage it.",
)
token_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Create, revoke and list board tokens.")
private_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Private held-out items.")
board_app.add_typer(token_app, name="token")
board_app.add_typer(private_app, name="private")
console = Console()

DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")]


def _db(db: str | None) -> str:
    from gapmeter.store.db import resolve_db_url

    return resolve_db_url(db, None)


@board_app.callback()
def serve(
    ctx: typer.Context,
    db: DbOption = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    root_path: Annotated[str, typer.Option("--root-path", help="URL prefix when served behind a reverse proxy, e.g. /board")] = "",
    require_token: Annotated[bool, typer.Option("--require-token", help="viewing needs a viewer token")] = False,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb")] = 64.0,
    private_items: Annotated[int, typer.Option("--private-items", help="private items per task per evaluation")] = 50,
    private_interval: Annotated[float, typer.Option("--private-interval", help="seconds between one submitter's private evaluations")] = 3600.0,
    private_rps: Annotated[float, typer.Option("--private-rps", help="requests per second sent to an endpoint")] = 5.0,
    allow_private_endpoints: Annotated[bool, typer.Option("--allow_private_endpoints", "--allow-private-endpoints", help="let private evaluations call loopback, private and link-local addresses (refused by default: the board would reach its own network for a submitter)")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir")] = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path")] = None,
    cache_seconds: Annotated[float, typer.Option("--cache-seconds", help="pages are rebuilt at most once per this many seconds and may lag a write by up to twice that (0: always current, every page checks the store)")] = 2.0,
    submission_processes: Annotated[int, typer.Option("--submission-processes", help="processes that re-score uploads (0: threads of the board process)")] = 1,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="TASK=METRIC[,FILTER]: show and rank TASK by this metric, e.g. a judge's: support_faq=judge_score (repeatable; default: the task's first declared metric)")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
) -> None:
    """Serve the board: ``gapmeter board --db URL [--host 127.0.0.1 --port 8000]``."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"db": db}
        return
    import uvicorn

    from gapmeter.board import jsonlog
    from gapmeter.board.app import BoardSettings, create_app
    from gapmeter.board.private import PrivatePolicy

    if not 1 <= port <= 65535:
        raise GapmeterError(f"--port {port}: must be 1-65535")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise GapmeterError(f"--root-path {root_path!r}: must start with / and not end with /")
    jsonlog.configure(log_level)
    settings = BoardSettings(
        db_url=_db(db), root_path=root_path, require_token=require_token,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        private=PrivatePolicy(items_per_eval=private_items, min_interval_s=private_interval, max_rps=private_rps,
                              allow_private_endpoints=allow_private_endpoints),
        data_dir=data_dir, include_path=tuple(include_path or ()), cache_seconds=max(0.0, cache_seconds),
        submission_processes=max(0, submission_processes), metrics=parse_metric_choices(metric or []),
    )
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, proxy_headers=True,
                forwarded_allow_ips="127.0.0.1")


def parse_metric_choices(values: list[str]) -> dict[str, str]:
    """``--metric TASK=METRIC[,FILTER]`` options -> task -> ``metric,filter``."""
    from gapmeter.board.views import parse_metric_choices as parse

    try:
        return parse(values)
    except ValueError as e:
        raise GapmeterError(f"--metric {e}") from None


def _sessions(ctx: typer.Context, db: str | None):  # noqa: ANN202
    from gapmeter.store.db import open_store

    parent = (ctx.obj or {}).get("db") if ctx.obj else None
    return open_store(_db(db or parent))


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="who the token is for")],
    role: Annotated[str, typer.Option("--role", help="viewer | submitter | admin")] = "submitter",
    expires_days: Annotated[float | None, typer.Option("--expires-days", help="the token stops working after this many days (default: never)")] = None,
    db: DbOption = None,
) -> None:
    """Create a token; the secret is printed once and only its hash is stored."""
    from gapmeter.board.auth import create_token

    sessions = _sessions(ctx, db)
    with sessions() as s:
        row, secret = create_token(s, name, role, actor="cli", expires_in_days=expires_days)
        s.commit()
    console.print(f"token {row.id} for [bold]{row.name}[/] ({row.role}); keep it, it is not shown again:", highlight=False)
    print(secret)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="revoke every active token of this name")] = None,
    token_id: Annotated[int | None, typer.Option("--id")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="the first 10 characters of the token")] = None,
    db: DbOption = None,
) -> None:
    """Revoke tokens by --id, --prefix or --name."""
    from gapmeter.board.auth import revoke_tokens

    sessions = _sessions(ctx, db)
    with sessions() as s:
        rows = revoke_tokens(s, actor="cli", name=name, token_id=token_id, prefix=prefix)
        if not rows:
            raise GapmeterError("no active token matches")
        s.commit()
        for r in rows:
            console.print(f"revoked token {r.id} ({r.name}, {r.role}, {r.prefix}…)", highlight=False)


@token_app.command("list")
def token_list(ctx: typer.Context, db: DbOption = None) -> None:
    """List tokens (never their secrets)."""
    from rich.table import Table
    from sqlalchemy import select

    from gapmeter.store.board_tables import BoardToken

    table = Table(title="board tokens")
    for col in ("id", "name", "role", "prefix", "created", "revoked"):
        table.add_column(col)
    with _sessions(ctx, db)() as s:
        for t in s.scalars(select(BoardToken).order_by(BoardToken.id)):
            table.add_row(str(t.id), t.name, t.role, t.prefix + "…", str(t.created_at)[:19], str(t.revoked_at or "")[:19])
    console.print(table)


@private_app.command("mark")
def private_mark(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task")],
    split: Annotated[str, typer.Option("--split", help="the split to keep private (e.g. a held-out file's split)")],
    db: DbOption = None,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir")] = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path")] = None,
) -> None:
    """Copy a task's split into the board's private items."""
    from gapmeter.board.private import PrivateEvalError, mark_split
    from gapmeter.board.tasklib import TaskLibrary

    try:
        out = mark_split(_sessions(ctx, db), TaskLibrary(tuple(include_path or ()), data_dir), task, split, "cli")
    except PrivateEvalError as err:
        raise GapmeterError(str(err)) from None
    console.print(f"private split {out['id']}: {out['items']} items of {task} ({split})", highlight=False)


@private_app.command("generate")
def private_generate(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task")],
    n: Annotated[int, typer.Option("--n", help="how many fresh items")] = 200,
    db: DbOption = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path")] = None,
) -> None:
    """Generate fresh private items for a generated task (secret seed)."""
    from gapmeter.board.private import PrivateEvalError, generate_split
    from gapmeter.board.tasklib import TaskLibrary

    try:
        out = generate_split(_sessions(ctx, db), TaskLibrary(tuple(include_path or ())), task, n, "cli")
    except PrivateEvalError as err:
        raise GapmeterError(str(err)) from None
    console.print(f"private split {out['id']}: {out['items']} fresh items of {task}", highlight=False)
