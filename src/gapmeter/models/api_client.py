"""One HTTP call to an OpenAI-compatible server, made reliable: retries, backoff, rate limits.

Transient failures (HTTP 408/409/429/5xx, timeouts, refused or dropped connections, a body that
is not the JSON we asked for) are retried with exponential backoff and jitter, honouring the
server's ``Retry-After`` / ``retry-after-ms``. Failures that retrying cannot fix (HTTP 400, 401,
403, 404, ...) raise :class:`ApiFatalError` at once, with the server's own message. A request
still failing after ``max_retries`` retries raises :class:`RequestFailed`, which the backend turns
into a failed request (stored as failed, asked again on resume, never scored).

The API key is sent in the ``Authorization`` header only; no message built here contains it.

The transport is aiohttp, for every server, proxied or not: one pool of ``concurrency``
kept-alive connections. A well-kept library rather than a private HTTP client: real endpoints
answer in 50-2,000 ms, so the ~0.3 ms per request a hand-written client saved is invisible, while
its HTTP edge cases would be ours to keep right forever. aiohttp rather than httpx: about half the
client CPU per request (docs/api.md). httpx is still used for the few synchronous calls
(``/models``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gapmeter.errors import GapmeterError
from gapmeter.models.rate_limit import RateLimiter

RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class ApiFatalError(GapmeterError):
    """A failure that retrying cannot fix (bad request, authentication, unknown model...)."""


class TransientError(Exception):
    """A failure worth retrying; ``retry_after`` is the server's requested wait, if any."""

    def __init__(self, reason: str, *, retry_after: float | None = None, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.unreachable = unreachable  # nothing answered at all (connection refused / no route)


class RequestFailed(Exception):
    """Still failing after every retry."""

    def __init__(self, reason: str, *, retries: int, unreachable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retries = retries
        self.unreachable = unreachable


@dataclass
class ApiReply:
    """A successful call: the parsed result plus what was measured on the final attempt."""

    result: Any
    latency_s: float  # request sent → last byte (the successful attempt)
    ttft_s: float | None  # request sent → first generated text (streaming only)
    usage: dict[str, Any] | None
    retries: int


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    backoff_s: float = 0.5  # first backoff; doubles each retry
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0  # never trust a server to park us longer than this

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            # Honour the server's wait, plus up to 10% so waiting clients do not return in step.
            return min(retry_after, self.max_retry_after_s) * (1.0 + 0.1 * rng.random())
        cap = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return cap * (0.5 + 0.5 * rng.random())  # "equal jitter": at least half the backoff


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or a date);
    ``headers`` is case-insensitive (aiohttp's, httpx's)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(body: bytes, reason: str | None) -> str:
    """The server's error text (OpenAI's ``{"error": {"message": ...}}`` or the raw body), short."""
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = body.decode("utf-8", "replace").strip()
        return text[:300] if text else (reason or "")
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed.get("detail", parsed))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(parsed)[:300]


def env_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTP(S)_PROXY``, ``NO_PROXY``) names for ``url``, as httpx
    and requests pick it; resolved once per client, not per request."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxy


class ApiClient:
    """An async HTTP client bound to one server; used inside one event loop at a time, by up to
    ``concurrency`` concurrent callers."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        key_source: str,
        timeout_s: float,
        concurrency: int,
        retry: RetryPolicy,
        limiter: RateLimiter,
        seed: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.key_source = key_source  # where the key came from (an env var name), for messages
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.retry = retry
        self.limiter = limiter
        self.rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._proxy = env_proxy(self.base_url)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    async def __aenter__(self) -> ApiClient:
        # A TLS context of our own, made now: aiohttp's default one is made at its import, before
        # SSL_CERT_FILE / SSL_CERT_DIR may have been set.
        tls = ssl.create_default_context() if self.base_url.startswith("https:") else True
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency,
                                         ttl_dns_cache=300, ssl=tls)
        # trust_env stays off: with it aiohttp looks up proxies and ~/.netrc in a thread on every
        # request; the proxy is resolved once (env_proxy) instead. No cookies: an API needs none.
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            # Per socket operation: `timeout` bounds every wait for bytes (a slow generation that
            # keeps streaming is never cut), connecting at most 30 s.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout_s, 30.0),
                                          sock_read=self.timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ calls
    async def call(
        self,
        path: str,
        payload: dict[str, Any],
        parse: Callable[[Any], Any],
        *,
        estimated_tokens: int,
        stream_delta: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> ApiReply:
        """POST ``payload``; ``parse`` turns the JSON body (or, when streaming, the joined text)
        into the result. A ``parse`` raising KeyError/TypeError/ValueError/IndexError marks the
        reply malformed (retried); raising GapmeterError is fatal."""
        attempt = 0
        while True:
            if self.limiter.active:
                await self.limiter.acquire(estimated_tokens)
            try:
                if stream_delta is None:
                    return await self._once(path, payload, parse, attempt)
                return await self._once_stream(path, payload, parse, stream_delta, attempt)
            except TransientError as err:
                if attempt >= self.retry.max_retries:
                    raise RequestFailed(err.reason, retries=attempt, unreachable=err.unreachable) from None
                await asyncio.sleep(self.retry.delay(attempt, err.retry_after, self.rng))
                attempt += 1

    async def _once(self, path: str, payload: dict[str, Any], parse: Callable[[Any], Any],
                    attempt: int) -> ApiReply:
        assert self._session is not None, "use ApiClient inside `async with`"
        url = self.url(path)
        data = json.dumps(payload).encode()
        t0 = time.perf_counter()
        try:
            async with self._session.post(url, data=data, proxy=self._proxy) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise self._transport_error(err, url) from None
        latency = time.perf_counter() - t0
        self._check_status(response, raw, url)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise TransientError(f"malformed JSON from {url} (HTTP {response.status})") from None
        result = self._parse(parse, body, url)
        usage = body.get("usage") if isinstance(body, dict) else None
        return ApiReply(result, latency, None, usage if isinstance(usage, dict) else None, attempt)

    async def _once_stream(
        self,
        path: str,
        payload: dict[str, Any],
        parse: Callable[[Any], Any],
        delta_of: Callable[[dict[str, Any]], str | None],
        attempt: int,
    ) -> ApiReply:
        assert self._session is not None, "use ApiClient inside `async with`"
        url = self.url(path)
        data = json.dumps(payload).encode()
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        ttft: float | None = None
        finished = False  # the answer is complete ([DONE] or a finish_reason)
        t0 = time.perf_counter()

        def on_line(line: bytes) -> bool:
            """One line of the event stream; True at ``data: [DONE]``."""
            nonlocal usage, ttft, finished
            if not line.startswith(b"data:"):
                return False  # blank separators, ": keep-alive" comments, "event:" lines
            event = line[5:].strip()
            if event == b"[DONE]":
                finished = True
                return True
            try:
                chunk = json.loads(event)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise TransientError(f"malformed JSON in the event stream from {url}") from None
            if not isinstance(chunk, dict):
                raise TransientError(f"malformed event in the stream from {url}")
            if "error" in chunk:
                raise TransientError(f"error in the event stream from {url}: {str(chunk['error'])[:200]}")
            try:
                delta = delta_of(chunk)
            except (KeyError, TypeError, IndexError, ValueError):
                raise TransientError(f"unexpected event shape in the stream from {url}") from None
            if delta:
                if ttft is None:
                    ttft = time.perf_counter() - t0
                parts.append(delta)
            if chunk.get("usage"):
                usage = chunk["usage"]
            choices = chunk.get("choices") or []
            if choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
                finished = True  # some servers end without [DONE]
            return False

        try:
            async with self._session.post(url, data=data, proxy=self._proxy) as response:
                if response.status != 200:
                    self._check_status(response, await response.read(), url)
                # Lines are split here: aiohttp's readline refuses lines longer than its buffer,
                # and an echoed prompt is one long line.
                pending = b""
                done = False
                async for piece in response.content.iter_any():
                    lines = (pending + piece).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        if on_line(line.rstrip(b"\r")):
                            done = True
                            break
                    if done:
                        break
                if not done and pending:
                    on_line(pending.rstrip(b"\r"))
                if done and not response.content.at_eof():
                    # The body's end follows [DONE] at once from any sane server: reading it
                    # gives the connection back to the pool (aiohttp closes one left unread), a
                    # TLS handshake saved per request. A server that lingers gets a second.
                    try:
                        async with asyncio.timeout(1.0):
                            await response.content.read()
                    except (aiohttp.ClientError, TimeoutError):
                        pass
        except (aiohttp.ClientError, TimeoutError) as err:
            raise self._transport_error(err, url) from None
        latency = time.perf_counter() - t0
        if not finished:
            raise TransientError(f"the event stream from {url} ended before the answer did")
        result = self._parse(parse, "".join(parts), url)
        return ApiReply(result, latency, ttft, usage if isinstance(usage, dict) else None, attempt)

    # ---------------------------------------------------------- classification
    def _check_status(self, response: aiohttp.ClientResponse, body: bytes, url: str) -> None:
        code = response.status
        if code < 400:
            return
        if code in RETRYABLE_STATUS:
            raise TransientError(
                f"HTTP {code} from {url}: {_server_message(body, response.reason)}",
                retry_after=parse_retry_after(response.headers),
            )
        message = _server_message(body, response.reason)
        if code in (401, 403):
            raise ApiFatalError(
                f"HTTP {code} from {url}: {message} (check the API key in ${self.key_source})"
            )
        if code == 404:
            raise ApiFatalError(f"HTTP 404 from {url}: {message} (check base_url and model)")
        raise ApiFatalError(f"HTTP {code} from {url}: {message}")

    def _transport_error(self, err: BaseException, url: str) -> TransientError:
        if isinstance(err, TimeoutError):  # aiohttp's connect/read timeouts are TimeoutErrors
            # No connection within the connect timeout: nothing answered (aiohttp >= 3.10 says so).
            unreachable = isinstance(err, getattr(aiohttp, "ConnectionTimeoutError", ()))
            return TransientError(f"timeout after {self.timeout_s:g}s waiting for {url}", unreachable=unreachable)
        reason = str(err) or type(err).__name__
        # refused, no route, DNS failure, TLS certificate, the proxy itself unreachable
        if isinstance(err, aiohttp.ClientConnectorError):
            return TransientError(f"cannot connect to {url} ({reason})", unreachable=True)
        return TransientError(f"connection to {url} dropped ({reason})")

    @staticmethod
    def _parse(parse: Callable[[Any], Any], body: Any, url: str) -> Any:
        try:
            return parse(body)
        except GapmeterError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise TransientError(f"unexpected response shape from {url}: {type(err).__name__}: {err}") from None
