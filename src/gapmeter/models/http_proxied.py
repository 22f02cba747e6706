"""The API backend's transport through a proxy: aiohttp, behind :class:`~gapmeter.models.http1.Http1Pool`'s
interface (``post``, ``stream``, ``close``; failures as ``TransportError`` or ``TimeoutError``).

Used only when the environment (``HTTP(S)_PROXY``, ``NO_PROXY``) names a proxy for the server:
the lean client speaks no proxy protocol (absolute-form requests, ``CONNECT`` tunnels).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from gapmeter.models.http1 import Head, TransportError


class ProxiedPool:
    def __init__(self, base_url: str, *, proxy: str, headers: Mapping[str, str], limit: int,
                 connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(base_url)
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.proxy = proxy
        # trust_env stays off (the proxy is resolved once, by the caller): with it aiohttp looks
        # up proxies and ~/.netrc in a thread on every request. No cookies: an API needs none.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300),
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def post(self, path: str, body: bytes) -> tuple[Head, bytes]:
        try:
            async with self._session.post(self._origin + path, data=body, proxy=self.proxy) as response:
                return _head(response), await response.read()
        except aiohttp.ClientError as err:
            raise _transport_error(err) from None

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[tuple[Head, AsyncIterator[bytes]]]:
        try:
            async with self._session.post(self._origin + path, data=body, proxy=self.proxy) as response:
                yield _head(response), _pieces(response)
        except aiohttp.ClientError as err:
            raise _transport_error(err) from None

    async def close(self) -> None:
        await self._session.close()


def _head(response: aiohttp.ClientResponse) -> Head:
    headers: dict[str, str] = {}
    for key, value in response.headers.items():
        key = key.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Head(response.status, response.reason or "", headers)


async def _pieces(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for piece in response.content.iter_any():
            yield piece
    except aiohttp.ClientError as err:
        raise _transport_error(err) from None


def _transport_error(err: aiohttp.ClientError) -> TransportError:
    reason = str(err) or type(err).__name__
    # refused, no route, DNS failure, the proxy itself unreachable
    return TransportError(reason, unreachable=isinstance(err, aiohttp.ClientConnectorError))
