"""A lean HTTP/1.1 client for one server: kept-alive connections, responses parsed by httptools
(llhttp, the C parser uvicorn uses). The API backend's transport when no proxy applies.

Why not aiohttp everywhere: at concurrency 1 the client's CPU per request is the harness
overhead a user pays, and against the same local server (``bench/api_overhead.py``) aiohttp
needed 0.65-0.8 ms per request where a bare asyncio loop needs 0.3; this client, doing only
what an OpenAI-compatible API needs, stays near the bare loop. aiohttp (``http_proxied.py``)
still carries requests when the environment names a proxy for the server.

What it speaks: POST with a body; answers framed by Content-Length, chunked, or the connection's
close; keep-alive as the answer says (HTTP/1.1's default, ``Connection: close``, HTTP/1.0); TLS
for ``https`` with the default SSL context (system CAs, ``SSL_CERT_FILE``). It asks for
``identity`` encoding, so bodies are never compressed.

Connections: at most ``limit``, reused while the server keeps them open. A pooled connection the
server closed while idle is dropped before use; a reused one that fails before any byte of the
answer (the server closed it as we sent) is tried again once on a new connection. That is not a
retry of the request: the server never answered it.

Timeouts: connecting at most ``connect_timeout``; ``read_timeout`` bounds every wait for bytes
(a stream that keeps coming is never cut), as aiohttp's ``sock_read``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools


class TransportError(Exception):
    """No (complete) answer: refused, dropped, or not HTTP. ``unreachable``: nothing answered."""

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


@dataclass
class Head:
    status: int
    reason: str
    headers: dict[str, str]  # names in lower case; repeated fields joined with ", "


class _Connection(asyncio.Protocol):
    """One connection; one request at a time. The parser's callbacks fill in the current
    answer and wake the request's waiter."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.start(wake_on_body=False)

    def start(self, *, wake_on_body: bool) -> None:
        """Ready for the next answer on this connection."""
        self.wake_on_body = wake_on_body
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.received = False  # any byte of this answer
        self.error: BaseException | None = None
        self.last_data = 0.0
        self.waiter: asyncio.Future[None] | None = None

    # -------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(TransportError(f"malformed HTTP answer ({err})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete or self.error is not None:
            return
        if self.head_done and "content-length" not in self.headers and "chunked" not in self.headers.get(
                "transfer-encoding", "").lower():
            self.on_message_complete()  # a body framed by the connection's close has ended
            return
        detail = f" ({exc})" if exc else ""
        self._fail(TransportError(f"connection dropped{detail}"))

    # ---------------------------------------------------- httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return  # an interim answer (103 Early Hints, 100 Continue): the real one follows
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        if self.wake_on_body:
            self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of an interim answer
            self.reason, self.headers = "", {}
            return
        # Read here: once the callback returns, the parser is ready for the next answer and no
        # longer knows this one's framing.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        self._wake()

    # ------------------------------------------------------------- waiting
    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, err: BaseException) -> None:
        self.error = err
        if self.transport is not None:
            self.transport.abort()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(err)

    async def next_event(self, read_timeout: float) -> None:
        """Until the parser reports something (head, body when streaming, the end) or fails;
        TimeoutError when no byte came for ``read_timeout`` seconds."""
        if self.error is not None:
            raise self.error
        if self.closed:
            raise TransportError("connection dropped")
        self.waiter = waiter = self.loop.create_future()

        def check() -> None:
            nonlocal timer
            if waiter.done():
                return
            due = self.last_data + read_timeout
            if due > self.loop.time():  # bytes came meanwhile: wait on from the last of them
                timer = self.loop.call_at(due, check)
                return
            self._fail(TimeoutError())

        timer = self.loop.call_later(read_timeout, check)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Kept-alive HTTP/1.1 connections to the server of ``base_url``; used inside one event loop."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], limit: int, connect_timeout: float,
                 read_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        fields = {"Host": shown if default_port else f"{shown}:{self.port}",
                  "Accept-Encoding": "identity", "User-Agent": "gapmeter", **headers}
        self._fields = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode("latin-1")
        self._heads: dict[str, bytes] = {}
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._slots = asyncio.Semaphore(limit)

    async def post(self, path: str, body: bytes) -> tuple[Head, bytes]:
        """The whole answer to one POST."""
        async with self._slots:
            conn = await self._send(path, body, stream=False)
            try:
                while not conn.complete:
                    await conn.next_event(self.read_timeout)
                return Head(conn.parser.get_status_code(), conn.reason, conn.headers), b"".join(conn.body)
            finally:
                self._release(conn)

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[tuple[Head, AsyncIterator[bytes]]]:
        """``async with pool.stream(path, body) as (head, pieces)``: the body as it arrives."""
        async with self._slots:
            conn = await self._send(path, body, stream=True)
            try:
                while not conn.head_done:
                    await conn.next_event(self.read_timeout)
                yield Head(conn.parser.get_status_code(), conn.reason, conn.headers), self._pieces(conn)
            except BaseException:
                self._discard(conn)
                raise
            await self._finish(conn)
            self._release(conn)

    async def _finish(self, conn: _Connection) -> None:
        """The reader stopped at the end of its event stream (``data: [DONE]``); the chunked
        body's last bytes follow at once from any sane server. Reading them keeps the connection
        for the next request (a TLS handshake saved); a server that lingers gets a second."""
        if conn.complete or conn.error is not None or conn.closed:
            return
        try:
            async with asyncio.timeout(1.0):
                while not conn.complete:
                    await conn.next_event(self.read_timeout)
        except (TransportError, TimeoutError):
            pass  # not reusable; _release closes it

    async def _pieces(self, conn: _Connection) -> AsyncIterator[bytes]:
        while True:
            if conn.body:
                data = b"".join(conn.body)
                conn.body.clear()
                yield data
            elif conn.complete:
                return
            else:
                await conn.next_event(self.read_timeout)

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    # -------------------------------------------------------------- internals
    def _head(self, path: str, length: int) -> bytes:
        start = self._heads.get(path)
        if start is None:
            start = self._heads[path] = f"POST {path} HTTP/1.1\r\n".encode("latin-1") + self._fields
        return start + b"Content-Length: %d\r\n\r\n" % length

    async def _send(self, path: str, body: bytes, *, stream: bool) -> _Connection:
        message = self._head(path, len(body)) + body
        while True:
            conn, reused = await self._acquire()
            conn.start(wake_on_body=stream)
            assert conn.transport is not None
            conn.transport.write(message)
            if not reused:
                return conn
            try:  # a reused connection proves itself with the first event of the answer
                await conn.next_event(self.read_timeout)
            except TransportError:
                self._discard(conn)
                if conn.received:
                    raise
                continue  # the server had closed it: once more, on a new connection
            except BaseException:
                self._discard(conn)
                raise
            return conn

    async def _acquire(self) -> tuple[_Connection, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn, True
            self._discard(conn)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None)
        except TimeoutError:
            raise TransportError(f"no connection within {self.connect_timeout:g}s", unreachable=True) from None
        except OSError as err:  # refused, no route, unknown host, TLS certificate
            raise TransportError(str(err) or type(err).__name__, unreachable=True) from None
        self._open.add(conn)
        return conn, False

    def _release(self, conn: _Connection) -> None:
        if conn.complete and not conn.closed and conn.error is None and conn.keep_alive:
            conn.start(wake_on_body=False)
            self._idle.append(conn)
        else:
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)
