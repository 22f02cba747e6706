"""The API backend's one transport (aiohttp inside ``ApiClient``) against raw servers on
127.0.0.1 that answer byte for byte as a test scripts them: framing, keep-alive, dropped and
idle-closed connections, timeouts, streaming, TLS, and a real forwarding proxy from the
environment."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gapmeter.models.api_client import ApiClient, ApiReply, RequestFailed, RetryPolicy
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


def client(port: int, *, scheme: str = "http", timeout: float = 5.0, retries: int = 0) -> ApiClient:
    return ApiClient(f"{scheme}://127.0.0.1:{port}/v1", api_key="sk-test", key_source="OPENAI_API_KEY",
                     timeout_s=timeout, concurrency=2, retry=RetryPolicy(max_retries=retries, backoff_s=0.01),
                     limiter=RateLimiter())


async def post(c: ApiClient, payload: Any = "x", parse: Callable[[Any], Any] = lambda body: body) -> ApiReply:
    return await c.call("completions", {"prompt": payload}, parse, estimated_tokens=1)


def stream(c: ApiClient) -> Awaitable[ApiReply]:
    return c.call("completions", {"prompt": "x", "stream": True}, str, estimated_tokens=1,
                  stream_delta=lambda chunk: chunk["choices"][0]["text"] if chunk.get("choices") else None)


def event(data: str) -> bytes:
    line = f"data: {data}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(line), line)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(ok(json.dumps({"n": n, "echo": json.loads(body)["prompt"]}).encode()))
        return True

    async def main() -> None:
        async with RawServer(answer) as server, client(server.port) as c:
            for i in range(5):
                assert (await post(c, f"req{i}")).result == {"n": i + 1, "echo": f"req{i}"}
        assert server.connections == 1

    run(main())


def test_chunked_and_close_delimited_bodies() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n != 2:  # chunked, in three chunks written apart, after an interim answer
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            w.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{"a": \r\n')
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(b'1\r\n"\r\n7\r\nhello"}\r\n0\r\n\r\n')
            return True
        w.write(b'HTTP/1.0 200 OK\r\n\r\n{"until": "the end"}')  # no length: the close ends it
        return False

    async def main() -> None:
        async with RawServer(answer) as server, client(server.port) as c:
            assert (await post(c)).result == {"a": "hello"}
            assert (await post(c)).result == {"until": "the end"}
            assert (await post(c)).result == {"a": "hello"}
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
        async with RawServer(answer) as server, client(server.port) as c:
            for _ in range(4):
                reply = await post(c)
                assert reply.result == {"ok": True} and reply.retries == 0
                await asyncio.sleep(0.05)  # the idle close arrives meanwhile
        assert server.requests == 4 and server.connections == 3

    run(main())


def test_server_closing_as_we_send_costs_one_retry_never_the_request() -> None:
    # The server reads the 2nd request and closes without a byte: a keep-alive race as seen from
    # the client. aiohttp re-sends only idempotent methods itself; the retry policy covers POST.
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False
        w.write(ok(json.dumps({"n": n}).encode()))
        return True

    async def main() -> None:
        async with RawServer(answer) as server, client(server.port, retries=1) as c:
            assert (await post(c)).result == {"n": 1}
            reply = await post(c)
            assert (reply.result, reply.retries) == ({"n": 3}, 1)

    run(main())


def test_dropped_mid_answer_and_garbage_are_dropped_and_refused_is_unreachable() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial' if n == 1 else b"SMTP ready\r\n\r\n")
        return False

    async def main() -> None:
        async with RawServer(answer) as server, client(server.port) as c:
            port = server.port
            for _ in range(2):
                with pytest.raises(RequestFailed, match="dropped") as err:
                    await post(c)
                assert not err.value.unreachable
        async with client(port) as c:  # nothing listens there now
            with pytest.raises(RequestFailed, match="cannot connect") as err:
                await post(c)
            assert err.value.unreachable

    run(main())


def test_read_timeout_bounds_each_wait_not_the_whole_stream() -> None:
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n == 1:
            await asyncio.sleep(2)  # silent: times out
            return False
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):  # 0.9 s in all, never silent for 0.3 s
            await asyncio.sleep(0.15)
            w.write(event(json.dumps({"choices": [{"text": "."}]})))
            await w.drain()
        w.write(event("[DONE]") + b"0\r\n\r\n")
        return True

    async def main() -> None:
        async with RawServer(answer) as server, client(server.port, timeout=0.4) as c:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(RequestFailed, match="timeout after 0.4s") as err:
                await post(c)
            assert 0.35 < loop.time() - t0 < 1.5 and not err.value.unreachable
            reply = await stream(c)
            assert reply.result == "......"
            assert reply.ttft_s is not None and reply.latency_s - reply.ttft_s > 0.5  # read as it came

    run(main())


def test_streamed_answers_keep_their_connection() -> None:
    # The reader stops at ``data: [DONE]``; the chunked body's end comes a moment later and is
    # read too, so the next request reuses the connection (a TLS handshake saved per request).
    async def answer(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for data in (json.dumps({"choices": [{"text": f"tok{n}"}]}), "[DONE]"):
            w.write(event(data))
            await w.drain()
        await asyncio.sleep(0.02)
        w.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        async with RawServer(answer) as server, client(server.port) as c:
            for i in range(3):
                reply = await stream(c)
                assert reply.result == f"tok{i + 1}" and reply.ttft_s is not None
        assert server.connections == 1

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
        async with RawServer(answer, server_ctx) as server, client(server.port, scheme="https") as c:
            if trusted:
                for _ in range(3):
                    assert (await post(c)).result == {"ok": True}
                assert server.connections == 1
            else:
                with pytest.raises(RequestFailed, match="CERTIFICATE_VERIFY_FAILED|certificate verify") as err:
                    await post(c)
                assert err.value.unreachable

    run(main(trusted=False))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the client is made, not at import
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
        async with RawServer(answer) as server, client(server.port) as c:
            for i in range(2):
                assert (await post(c, parse=lambda b: b["choices"][0]["text"])).result == f"answer {i + 1}"
        proxy.close()

    run(main())
    assert seen and all(t.startswith(b"http://127.0.0.1:") and t.endswith(b"/v1/completions") for t in seen)
