"""The API backend's HTTP/1.1 client (models/http1.py) against raw servers on 127.0.0.1 that
answer byte for byte as a test scripts them: framing, keep-alive, dropped and idle-closed
connections, timeouts, streaming, TLS; and the proxied transport through a real forwarding proxy."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gapmeter.models.api_client import ApiClient, RetryPolicy
from gapmeter.models.http1 import Http1Pool, TransportError
from gapmeter.models.rate_limit import RateLimiter


class RawServer:
    """Counts connections; ``answer`` scripts what each request gets."""

    def __init__(self, answer: Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]],
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer  # (request number, body, writer) -> keep the connection open?
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests += 1
                if not await self.answer(self.requests, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def pool(port: int, *, scheme: str = "http", read_timeout: float = 5.0) -> Http1Pool:
    return Http1Pool(f"{scheme}://127.0.0.1:{port}/v1", headers={"Content-Type": "application/json"}, limit=4,
                     connect_timeout=5.0, read_timeout=read_timeout)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok(json.dumps({"n": n, "echo": body.decode()}).encode()))
        return True

    async def main() -> None:
        async with RawServer(answer) as server:
            p = pool(server.port)
            for i in range(5):
                head, body = await p.post("/v1/completions", f"req{i}".encode())
                assert head.status == 200 and head.headers["content-type"] == "application/json"
                assert json.loads(body) == {"n": i + 1, "echo": f"req{i}"}
            await p.close()
            assert server.connections == 1

    run(main())


def test_chunked_and_close_delimited_bodies() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n != 2:  # chunked, in three chunks written apart, after an interim answer
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(b"1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
            return True
        w.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")  # no length: the close ends it
        return False

    async def main() -> None:
        async with RawServer(answer) as server:
            p = pool(server.port)
            head, body = await p.post("/v1/x", b"{}")
            assert (head.status, head.reason, "link" in head.headers, body) == (200, "OK", False, b"hello world")
            head, body = await p.post("/v1/x", b"{}")
            assert (head.status, body) == (200, b"until the end")
            assert (await p.post("/v1/x", b"{}"))[1] == b"hello world"
            await p.close()
            assert server.connections == 2  # the close-delimited answer used up its connection

    run(main())


def test_connection_close_and_idle_close_are_transparent() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n == 1:
            w.write(ok(extra="Connection: close\r\n"))
            return False
        w.write(ok())
        await w.drain()
        return n != 2  # after the 2nd answer the server closes the (idle) connection

    async def main() -> None:
        async with RawServer(answer) as server:
            p = pool(server.port)
            for _ in range(4):
                head, body = await p.post("/v1/x", b"{}")
                assert head.status == 200 and json.loads(body) == {"ok": True}
                await asyncio.sleep(0.05)  # the idle close arrives meanwhile
            await p.close()
            assert server.requests == 4 and server.connections == 3

    run(main())


def test_server_closing_as_we_send_is_retried_once_on_a_new_connection() -> None:
    # The server reads the 2nd request and closes without a byte: a keep-alive race as seen from
    # the client, never a failure of the request itself.
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False
        w.write(ok(json.dumps({"n": n}).encode()))
        return True

    async def main() -> None:
        async with RawServer(answer) as server:
            p = pool(server.port)
            assert json.loads((await p.post("/v1/x", b"{}"))[1]) == {"n": 1}
            assert json.loads((await p.post("/v1/x", b"{}"))[1]) == {"n": 3}
            await p.close()

    run(main())


def test_a_fresh_connection_dropped_mid_answer_is_an_error() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial")
        return False

    async def main() -> None:
        async with RawServer(answer) as server:
            p = pool(server.port)
            with pytest.raises(TransportError, match="dropped") as err:
                await p.post("/v1/x", b"{}")
            assert not err.value.unreachable
            await p.close()

    run(main())


def test_refused_is_unreachable_and_garbage_is_an_error() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"SMTP ready\r\n\r\n")
        return False

    async def main() -> None:
        async with RawServer(answer) as server:
            port = server.port
            p = pool(port)
            with pytest.raises(TransportError, match="malformed HTTP"):
                await p.post("/v1/x", b"{}")
            await p.close()
        p = pool(port)  # nothing listens there now
        with pytest.raises(TransportError) as err:
            await p.post("/v1/x", b"{}")
        assert err.value.unreachable

    run(main())


def test_read_timeout_bounds_each_wait_not_the_whole_stream() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n == 1:
            await asyncio.sleep(2)  # silent: times out
            return False
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):  # 0.9 s in all, never silent for 0.3 s
            await asyncio.sleep(0.15)
            w.write(b"1\r\n.\r\n")
            await w.drain()
        w.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        async with RawServer(answer) as server:
            p = pool(server.port, read_timeout=0.4)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(TimeoutError):
                await p.post("/v1/x", b"{}")
            assert 0.35 < loop.time() - t0 < 1.5
            pieces = []
            async with p.stream("/v1/x", b"{}") as (head, body):
                assert head.status == 200
                async for piece in body:
                    pieces.append((loop.time(), piece))
            assert b"".join(x for _, x in pieces) == b"......"
            assert pieces[-1][0] - pieces[0][0] > 0.5  # delivered as they came, not at the end
            await p.close()

    run(main())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl (the command) is needed to make a certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_verifies_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok())
        return True

    async def main(trusted: bool) -> None:
        async with RawServer(answer, server_ctx) as server:
            p = pool(server.port, scheme="https")
            if trusted:
                for _ in range(3):
                    assert (await p.post("/v1/x", b"{}"))[0].status == 200
                assert server.connections == 1
            else:
                with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED|certificate verify") as err:
                    await p.post("/v1/x", b"{}")
                assert err.value.unreachable
            await p.close()

    run(main(trusted=False))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the default context's trust store
    run(main(trusted=True))


async def _forwarding_proxy(seen: list[bytes]) -> asyncio.Server:
    """An HTTP proxy for http:// targets: absolute-form request line in, origin-form out."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, rest = head.split(b"\r\n", 1)
                method, target, version = line.split(b" ")
                seen.append(target)
                hostport = target.split(b"//")[1].split(b"/")[0]
                path = b"/" + target.split(b"//")[1].split(b"/", 1)[1]
                length = next(int(x.split(b":")[1]) for x in rest.split(b"\r\n") if x.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                host, port = hostport.decode().rsplit(":", 1)
                up_r, up_w = await asyncio.open_connection(host, int(port))
                up_w.write(b" ".join([method, path, version]) + b"\r\n" + rest + body)
                up_head = await up_r.readuntil(b"\r\n\r\n")
                n = next(int(x.split(b":")[1]) for x in up_head.split(b"\r\n") if x.lower().startswith(b"content-length:"))
                writer.write(up_head + await up_r.readexactly(n))
                up_w.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_proxy_from_the_environment_carries_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok(json.dumps({"choices": [{"text": f"answer {n}"}]}).encode()))
        return True

    seen: list[bytes] = []

    async def main() -> None:
        proxy = await _forwarding_proxy(seen)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with RawServer(answer) as server:
            client = ApiClient(f"http://127.0.0.1:{server.port}/v1", api_key=None, key_source="OPENAI_API_KEY",
                               timeout_s=10, concurrency=2, retry=RetryPolicy(max_retries=0), limiter=RateLimiter(None, None))
            async with client:
                for i in range(2):
                    reply = await client.call("completions", {"prompt": "x"}, lambda b: b["choices"][0]["text"],
                                              estimated_tokens=1)
                    assert reply.result == f"answer {i + 1}"
        proxy.close()

    run(main())
    assert seen and all(t.startswith(b"http://127.0.0.1:") and t.endswith(b"/v1/completions") for t in seen)


def test_streamed_answers_keep_their_connection() -> None:
    # The reader stops at ``data: [DONE]``; the chunked body's end comes a moment later and is
    # read too, so the next request reuses the connection (a TLS handshake saved per request).
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for event in (json.dumps({"choices": [{"text": f"tok{n}"}]}), "[DONE]"):
            data = f"data: {event}\n\n".encode()
            w.write(b"%x\r\n%s\r\n" % (len(data), data))
            await w.drain()
        await asyncio.sleep(0.02)
        w.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        async with RawServer(answer) as server:
            client = ApiClient(f"http://127.0.0.1:{server.port}/v1", api_key="sk-test", key_source="OPENAI_API_KEY",
                               timeout_s=10, concurrency=1, retry=RetryPolicy(max_retries=0), limiter=RateLimiter())
            async with client:
                for i in range(3):
                    reply = await client.call("completions", {"prompt": "x", "stream": True}, str, estimated_tokens=1,
                                              stream_delta=lambda c: c["choices"][0]["text"] if c.get("choices") else None)
                    assert reply.result == f"tok{i + 1}" and reply.ttft_s is not None
            assert server.connections == 1

    run(main())
