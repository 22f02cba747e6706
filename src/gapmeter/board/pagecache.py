"""Response bodies rendered once per snapshot: the leaderboard (page and API) and the Pareto page.

A body depends only on the snapshot and the request's key (path, query, root path, who asks),
so it is rendered once per snapshot and then served as bytes from the event loop, with a strong
ETag (``If-None-Match`` -> 304) and a gzip copy for clients that accept it. Rendering runs in the
thread pool, once per key even when many requests miss at the same time. When a rebuild replaces
the snapshot, the keys read most on the old one are rendered on the new one before it is swapped
in (``warm``, called by ``SnapshotCache`` in its rebuilding thread), so readers of the usual views
never wait for a render after a submission.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gapmeter.board.readmodel import Snapshot

if TYPE_CHECKING:
    from gapmeter.board.context import BoardContext

MAX_ENTRIES = 256  # per snapshot; past it the cache starts over (many distinct queries)
WARM_KEYS = 8  # bodies re-rendered for a new snapshot before it is served


@dataclass
class Rendered:
    body: bytes
    gz: bytes
    etag: str
    media_type: str
    make: Callable[[Snapshot], tuple[bytes, str]]  # renders this key for another snapshot
    hits: int = 0


def render(snap: Snapshot, make: Callable[[Snapshot], tuple[bytes, str]]) -> Rendered:
    body, media_type = make(snap)
    # Level 6: ~5x smaller HTML/JSON for a few ms, paid once per snapshot and key.
    gz = gzip.compress(body, compresslevel=6, mtime=0)
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return Rendered(body, gz, etag, media_type, make)


async def respond(request: Request, ctx: BoardContext, key: Hashable,
                  make: Callable[[Snapshot], tuple[bytes, str]]) -> Response:
    """The cached body for ``key`` on the current snapshot, rendered by ``make`` on a miss.
    ``make`` may raise HTTPException (bad parameters); nothing is cached then."""
    snap = ctx.cache.peek()  # no store access on the event loop while the snapshot is fresh
    if snap is None and (pending_build := ctx.cache.refreshing()) is not None:
        # Too old to serve while it is rebuilt: wait for that rebuild without holding a thread
        # (pages not cached here need the thread pool meanwhile).
        await asyncio.wrap_future(pending_build)
        snap = ctx.cache.peek()
    if snap is None:
        snap = await run_in_threadpool(_current, ctx)
    entry = snap.rendered.get(key)
    if isinstance(entry, asyncio.Future):  # another request is rendering this key
        entry = await asyncio.shield(entry)
    elif entry is None:
        pending: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        if len(snap.rendered) >= MAX_ENTRIES:
            snap.rendered.clear()
        snap.rendered[key] = pending
        try:
            entry = await run_in_threadpool(render, snap, make)
        except BaseException as err:
            snap.rendered.pop(key, None)
            pending.set_exception(err)
            pending.exception()  # retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        snap.rendered[key] = entry
        pending.set_result(entry)
    assert isinstance(entry, Rendered)
    entry.hits += 1
    return _response(request, entry)


def _current(ctx: BoardContext) -> Snapshot:
    with ctx.sessions() as s:
        return ctx.cache.get(s)


def _response(request: Request, entry: Rendered) -> Response:
    headers = {"ETag": entry.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or entry.etag in (t.strip().removeprefix("W/") for t in inm.split(","))):
        return Response(status_code=304, headers=headers)
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(entry.gz, media_type=entry.media_type, headers=headers)
    return Response(entry.body, media_type=entry.media_type, headers=headers)


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _q(q[2:]) == 0.0)
    return False


def _q(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def warm(old: Snapshot, new: Snapshot) -> None:
    """Render on ``new`` the keys read most (twice or more) on ``old`` (runs in the rebuilding thread, before
    ``new`` is visible to readers, so no lock is needed)."""
    done = [(k, v) for k, v in list(old.rendered.items()) if isinstance(v, Rendered) and v.hits >= 2]
    done.sort(key=lambda kv: -kv[1].hits)
    for key, entry in done[:WARM_KEYS]:
        try:
            new.rendered[key] = render(new, entry.make)
        except Exception:  # noqa: BLE001 - e.g. a task column that no longer exists: render on demand
            continue
