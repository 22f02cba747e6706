"""The board's outbound side: how a private evaluation reaches a submitter's endpoint.

Three rules (issue 19; tests in ``tests/board/test_private_security.py``):

* **Only the submitter's credentials.** The ``openai`` backend is built from structured values
  (:class:`~gapmeter.models.openai_api.OpenAIConfig`), never from a ``--model_args`` string, and
  with ``api_key_env=none``: the key is the one the submitter sent, or none. The board's
  environment (``OPENAI_API_KEY`` or any other variable) is never read.
* **Public addresses only** (unless the operator passes ``--allow_private_endpoints``). The host
  is resolved and every address checked when the evaluation is asked for, and again on every
  connection the backend opens (:class:`GuardedLoop`): the socket connects to an address that
  was checked, so DNS rebinding and redirects (each redirect is a new connection) are re-checked.
* **Errors say nothing about what answered**: a closed port, a live non-OpenAI service, a
  refused address and a wrong answer all end as the same message (``private.FAILED``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gapmeter.models.openai_api import NO_KEY_ENV, OpenAIBackend, OpenAIConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# `model` values as real servers name them (org/name:tag@rev); no separators, spaces or controls.
API_MODEL_RE = re.compile(r"^[A-Za-z0-9._:/@+\-]{1,200}$")
_URL_BAD = re.compile(r"[\s,;\\<>\"'`{}|^\x00-\x1f\x7f]")


# The one message a submitter sees for any failure after the evaluation was queued: a closed
# port, a live service that is not an OpenAI endpoint, a refused address, an error status and a
# wrong answer look the same, so the board is no scanner of what answers where. Admins get the
# reason (a category, never the endpoint's text) in the audit log.
FAILED = "evaluation failed: the endpoint did not answer every request with a valid completion"


class EndpointFailed(Exception):
    """Not every request got a valid answer; ``reasons`` are categories, safe to log."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def failure_category(text: str | None) -> str:
    """What kind of failure a backend message describes, without any of its text (an endpoint's
    own message may quote the private prompt)."""
    text = text or ""
    code = re.match(r"HTTP (\d{3})", text)
    if "non-public address" in text:
        return "refused: non-public address"
    if code:
        return f"HTTP {code.group(1)}"
    for prefix, label in (("cannot connect", "unreachable"), ("not sent", "unreachable"), ("timeout", "timeout"),
                          ("malformed", "malformed answer"), ("unexpected", "malformed answer"),
                          ("the event stream", "malformed answer")):
        if text.startswith(prefix) or prefix in text[:40]:
            return label
    return "no valid answer"


class RefusedAddress(OSError):
    """A connection the guard did not allow (an OSError, so transports treat it as unreachable)."""


@dataclass
class EndpointGuard:
    """Which addresses the board may connect to for a private evaluation."""

    allow_private: bool = False  # ``gapmeter board --allow_private_endpoints``
    allow_networks: tuple[IPNetwork, ...] = ()  # extra allowed networks (tests, an operator's lab)
    refused: list[str] = field(default_factory=list)  # addresses refused (for the audit log)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allowed(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.allow_networks if net.version == ip.version):
            return True
        if self.allow_private:
            return True
        return _public(ip)

    def check(self, address: str) -> None:
        ip = _parse_ip(address)
        if ip is None or not self.allowed(ip):
            with self._lock:
                self.refused.append(address)
            raise RefusedAddress(f"connection to a non-public address refused ({address})")

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, each checked; :class:`RefusedAddress` if any is refused (a
        name with one public and one private record is refused: the transport may pick either)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise RefusedAddress("the host does not resolve") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for a in addresses:
            self.check(a)
        return addresses


def _parse_ip(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of it
    except ValueError:
        return None


def _public(ip: IPAddress) -> bool:
    """Globally routable unicast, including for addresses that embed an IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None and not _public(inner):
                return False
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address is the last 32 bits
            return _public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    # is_global is False for loopback, private, link-local (169.254.169.254: cloud metadata),
    # shared (100.64/10: Alibaba's metadata), reserved, unspecified and documentation ranges.
    return ip.is_global and not ip.is_multicast


def check_base_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of a well-formed endpoint URL; ValueError with a one-line reason."""
    if _URL_BAD.search(url):
        raise ValueError("base_url contains a character a URL cannot have here (spaces, commas, quotes, controls)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL such as https://host/v1")
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url must not carry credentials; send the key as api_key")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("base_url has an invalid port") from None
    return parts.hostname, port


def check_reachable(url: str, guard: EndpointGuard) -> None:
    """Before anything is queued: the host resolves and only to addresses the guard allows.
    The answer states a DNS fact the submitter can look up, never what listens there."""
    from gapmeter.models.api_client import env_proxy

    host, port = check_base_url(url)
    if env_proxy(url) is not None:
        # Through a proxy the proxy resolves and connects: the address could not be checked.
        raise ValueError("this board's environment sends this URL through an HTTP proxy; private "
                         "evaluations do not use proxies (the operator can set NO_PROXY)")
    try:
        guard.resolve(host, port)
    except RefusedAddress as err:
        if "does not resolve" in str(err):
            raise ValueError(f"base_url: host {host!r} does not resolve") from None
        raise ValueError("base_url resolves to a loopback, private, link-local or reserved address; "
                         "this board evaluates public endpoints only") from None


class GuardedLoop(asyncio.SelectorEventLoop):
    """An event loop whose every outbound connection goes through :class:`EndpointGuard`.

    Transports differ in how they connect (``create_connection(host, port)``, or resolving
    first and ``sock_connect`` to an address, as aiohttp's happy eyeballs does); all three entry
    points are checked, so the check holds whatever transport ``api_client`` uses."""

    def __init__(self, guard: EndpointGuard) -> None:
        super().__init__()
        self.guard = guard

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        infos = await super().getaddrinfo(host, port, *args, **kwargs)
        for info in infos:
            self.guard.check(str(info[4][0]))
        return infos

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        self.guard.check(str(address[0]))
        return await super().sock_connect(sock, address)

    async def create_connection(self, protocol_factory: Any, host: str | None = None, port: int | None = None,
                                **kwargs: Any) -> Any:
        sock = kwargs.get("sock")
        if sock is not None:  # connected by sock_connect (checked); check its peer all the same
            self.guard.check(str(sock.getpeername()[0]))
            return await super().create_connection(protocol_factory, **kwargs)
        if host is None or port is None:
            raise RefusedAddress("a connection without a host is not allowed")
        addresses = await self.run_in_executor(None, self.guard.resolve, host, port)
        if kwargs.get("ssl") and not kwargs.get("server_hostname"):
            kwargs["server_hostname"] = host  # the certificate is checked against the name
        last: OSError = RefusedAddress("no address")
        for address in addresses:  # connect to the checked address itself: no second lookup
            try:
                return await super().create_connection(protocol_factory, address, port, **kwargs)
            except OSError as err:
                last = err
        raise last


class BoardOpenAIBackend(OpenAIBackend):
    """The ``openai`` backend, run on a :class:`GuardedLoop`."""

    def __init__(self, config: OpenAIConfig, *, api_key: str | None, guard: EndpointGuard) -> None:
        super().__init__(config, api_key=api_key)
        self.guard = guard

    def _run(self, jobs: Sequence[Any], on_done: Any) -> None:
        if not jobs:
            return
        # The evaluation runs in its own thread, so no loop is running here.
        with asyncio.Runner(loop_factory=lambda: GuardedLoop(self.guard)) as runner:
            runner.run(self._run_async(list(jobs), on_done))


def build_backend(*, base_url: str, api_model: str, api: str, api_key: str | None, max_rps: float,
                  guard: EndpointGuard) -> BoardOpenAIBackend:
    """The backend for one private evaluation, from structured values only."""
    from gapmeter.models.openai_api import normalize_base_url

    config = OpenAIConfig(
        base_url=normalize_base_url(base_url), model=api_model, api=api, concurrency=1,
        rpm=max(1.0, max_rps * 60), timeout=60.0, max_retries=2, stream=False,
        api_key_env=NO_KEY_ENV,  # never the board's environment: the key below or none
    )
    return BoardOpenAIBackend(config, api_key=api_key or None, guard=guard)
