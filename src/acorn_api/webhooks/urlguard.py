"""SSRF guard for tenant-supplied webhook URLs: checked when saved, and again when connecting.

The API, small on purpose (the lead may fold it into a shared ``core/netguard.py``):

* :class:`Policy` — what is allowed; :func:`policy_for` builds it from the settings.
* :func:`check_url` — the static checks (scheme, userinfo, numeric-host tricks); returns host and port.
* :func:`check_address` — one IP address against the policy.
* :func:`check_url_resolved` — both, after DNS resolution (every address the name resolves to must pass).
* :func:`guarded_client` — an ``httpx.AsyncClient`` whose every TCP connection is resolved, checked and
  made to the checked address (so a DNS answer that changes between check and connect cannot slip a
  private address in), whose peer address is checked again once connected, that never follows redirects
  and ignores proxy environment variables.

Rules: only ``http``/``https``; ``https`` unless the policy allows plain http (development and test only);
no credentials in the URL; a host whose last label is numeric must be a canonical dotted-quad IPv4
(``2130706433``, ``0177.0.0.1``, ``0x7f.1`` are refused: resolvers read them as 127.0.0.1); an address
must be globally routable — private (10/8, 172.16/12, 192.168/16), shared (100.64/10), link-local
(169.254/16, fe80::/10, which holds the cloud metadata address 169.254.169.254), unique-local (fc00::/7),
multicast, reserved and unspecified addresses are always refused, IPv4 mapped or embedded in IPv6
(``::ffff:10.0.0.1``, 6to4, NAT64) is judged as the IPv4 it carries; loopback (127/8, ::1) only when
the policy allows it, which :func:`policy_for` does exactly when ``ACORN_ENVIRONMENT`` is
``development`` or ``test`` (the test suite's receiver listens on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from acorn_api.settings import Settings

MAX_URL_LENGTH = 2048
DNS_TIMEOUT_SECONDS = 5.0
_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """A URL (or the address it leads to) that a webhook may not be sent to; the message says why."""


@dataclass(frozen=True)
class Policy:
    allow_loopback: bool
    allow_http: bool


def policy_for(settings: Settings) -> Policy:
    """Loopback and plain http only on a developer's machine and in the test suite."""
    return Policy(allow_loopback=settings.allows_loopback_urls, allow_http=settings.allows_loopback_urls)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def check_url(url: str, policy: Policy) -> Target:
    """The checks that need no DNS: scheme, credentials, host spelling, port."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeUrl("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("must be an https:// URL")
    if scheme == "http" and not policy.allow_http:
        raise UnsafeUrl("must use https (plain http is accepted only in development)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("must not contain credentials (user:password@)")
    if parts.fragment:
        raise UnsafeUrl("must not contain a #fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("must name a host")
    literal = _ip_literal(host)
    if literal is not None:
        check_address(literal, policy)
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))


def _ip_literal(host: str) -> IPAddress | None:
    """The address a numeric host names, or ``None`` for a DNS name; non-canonical numbers are refused."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise UnsafeUrl("an IP address host must be written as four decimal numbers, e.g. 203.0.113.7")
    return None


def _carried_ipv4(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def check_address(address: str | IPAddress, policy: Policy) -> IPAddress:
    """Refuse an address a webhook must never reach; returns the parsed address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError as exc:
        raise UnsafeUrl(f"{address!r} is not an IP address") from exc
    judged = _carried_ipv4(ip)
    if judged.is_loopback:
        if policy.allow_loopback:
            return ip
        raise UnsafeUrl(f"leads to a loopback address ({ip}), allowed only in development")
    if judged in _METADATA:
        raise UnsafeUrl(f"leads to a cloud metadata address ({ip})")
    if judged.is_link_local:
        raise UnsafeUrl(f"leads to a link-local address ({ip})")
    if isinstance(judged, ipaddress.IPv6Address) and judged in ipaddress.ip_network("fc00::/7"):
        raise UnsafeUrl(f"leads to a unique-local address ({ip})")
    if judged.is_private:
        raise UnsafeUrl(f"leads to a private address ({ip})")
    if judged.is_multicast or judged.is_unspecified or judged.is_reserved or not judged.is_global:
        raise UnsafeUrl(f"leads to an address that is not publicly routable ({ip})")
    return ip


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to play a hostile DNS)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), DNS_TIMEOUT_SECONDS
    )
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


async def resolve_checked(host: str, port: int, policy: Policy) -> list[str]:
    """The host's addresses, all of them allowed; one forbidden address refuses the host."""
    literal = _ip_literal(host)
    if literal is not None:
        check_address(literal, policy)
        return [str(literal)]
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise UnsafeUrl(f"host {host!r} does not resolve") from exc
    if not addresses:
        raise UnsafeUrl(f"host {host!r} does not resolve")
    for address in addresses:
        check_address(address, policy)
    return addresses


async def check_url_resolved(url: str, policy: Policy) -> Target:
    """:func:`check_url`, then every address of the host after DNS resolution."""
    target = check_url(url, policy)
    await resolve_checked(target.host, target.port, policy)
    return target


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, connects to the checked address, and checks the connected peer again."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(host, port, self._policy)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            peer = stream.get_extra_info("server_addr")
            try:
                check_address(str(peer[0]) if peer else "", self._policy)
            except UnsafeUrl:
                await stream.aclose()
                raise
            return stream
        raise error or httpcore.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("unix sockets are not webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: Policy, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx has no public hook for the network backend; the pool it builds is replaced by the same
        # pool with our backend (the httpx maintainers' suggested way to customise connection setup).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def guarded_client(policy: Policy, *, timeout: float, max_connections: int = 100) -> httpx.AsyncClient:
    """An HTTP client for tenant URLs: guarded connections, no redirects, no proxies from the environment."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    transport = _GuardedTransport(policy, limits, httpx.create_ssl_context(trust_env=False))
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
    )
