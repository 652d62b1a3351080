"""Outbound HTTP to URLs a tenant supplied: refuse internal addresses, before and while connecting.

The one SSRF guard of the service (the Amazon connector uses it directly, webhooks through the webhook policy
in :mod:`acorn_api.webhooks.urlguard`). A URL a tenant controls (a connection endpoint, a webhook URL, a report
document URL named by a server) is hostile until checked. Three layers, each usable alone:

- :func:`check_url` — static: scheme, no credentials, spaces or control characters in the URL, the host on an
  allow-list (when one is given), no numeric host in any spelling but canonical dotted-quad IPv4 or IPv6
  (``2130706433``, ``0x7f.1``, ``10.1`` are refused: resolvers read them as addresses), and an IP literal
  host not in a forbidden range.
- :func:`resolve_and_check` — the host's DNS answers (through :func:`resolve`), every one of them outside the
  forbidden ranges.
- :func:`guarded_transport` — an ``httpx`` transport that does both for every request and, at connect time,
  connects to an address it checked (no second DNS lookup that a rebinding server could answer
  differently) and checks the socket's peer address once more. Clients built with :func:`guarded_client`
  never follow redirects and ignore proxy environment variables.

Forbidden: every address that is not globally routable (private ranges, shared address space, link-local
— where cloud metadata lives —, unique-local, unspecified, reserved, documentation ranges), multicast, and
the metadata addresses and names; loopback only unless the caller allows it (development and tests). An IPv6
address carrying an IPv4 one (mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64 ``64:ff9b::/96``) is judged as
the IPv4 address it carries (see :func:`forbidden_reason`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Collection, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS_TIMEOUT_SECONDS = 5.0
#: Cloud metadata services, named even though the ranges above cover them, so the reason is clear.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba
        ipaddress.ip_address("192.0.0.192"),  # Oracle
    }
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


class UnsafeURL(ValueError):
    """A URL or address that outbound calls must not reach; ``reason`` is a short stable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def carried_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), else ``ip`` itself."""
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


def forbidden_reason(address: str | IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``address`` must not be reached (``None`` when it may); ``ValueError`` if it is no address.

    An IPv4-mapped address is the IPv4 address. A 6to4, Teredo or NAT64 address must pass both as the IPv4
    address it carries and as itself (so NAT64 and Teredo, neither globally routable, are always refused).
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    carried = carried_ipv4(ip)
    if carried is ip:
        return _reason(ip, allow_loopback)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _reason(carried, allow_loopback)
    return _reason(carried, allow_loopback) or _reason(ip, allow_loopback)


def _reason(ip: IPAddress, allow_loopback: bool) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip in _UNIQUE_LOCAL:
        return "unique_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "private"
    return None


def check_address(address: str | IPAddress, *, allow_loopback: bool = False) -> None:
    try:
        reason = forbidden_reason(address, allow_loopback=allow_loopback)
    except ValueError as exc:
        raise UnsafeURL(f"{address!r} is not an IP address", reason="invalid") from exc
    if reason is not None:
        raise UnsafeURL(f"address {address} is not allowed ({reason.replace('_', '-')})", reason=reason)


def host_matches(host: str, port: int | None, allowed_hosts: Collection[str]) -> bool:
    """``host`` (and ``port``) is named by an entry: ``host`` (any port) or ``host:port``."""
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        name, sep, entry_port = entry.lower().rpartition(":") if _has_port(entry) else (entry.lower(), "", "")
        name = name.strip("[]").rstrip(".")
        if name == host and (not sep or (port is not None and entry_port == str(port))):
            return True
    return False


def _has_port(entry: str) -> bool:
    if entry.startswith("["):  # [::1]:8100
        return "]:" in entry
    return entry.count(":") == 1


def _literal_ip(host: str) -> IPAddress | None:
    """The address an IP literal host names, ``None`` for a DNS name; other numeric spellings are refused."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise UnsafeURL(
            f"host {host} is a numeric address in an odd spelling: write four decimal numbers, e.g. 203.0.113.7",
            reason="numeric_host",
        )
    return None


def _check_host_name(host: str, *, allow_loopback: bool) -> IPAddress | None:
    """The static host checks: metadata names, numeric spellings, and an IP literal's address."""
    if host.lower().rstrip(".") in METADATA_HOSTNAMES:
        raise UnsafeURL(f"host {host} is a cloud metadata service", reason="metadata")
    literal = _literal_ip(host)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
    return literal


def check_url(
    url: str | httpx.URL,
    *,
    allowed_hosts: Collection[str] | None = None,
    allow_loopback: bool = False,
    schemes: Collection[str] = ("https",),
) -> httpx.URL:
    """The parsed URL when it passes the static checks; else :class:`UnsafeURL`.

    ``allowed_hosts`` ``None`` means any public host; otherwise the host (and port, if the entry names one)
    must be listed.
    """
    if isinstance(url, str) and any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL("spaces and control characters are not allowed in a URL", reason="invalid")
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeURL(f"not a valid URL: {exc}", reason="invalid") from exc
    if parsed.scheme not in schemes:
        raise UnsafeURL(
            f"scheme {parsed.scheme or '(none)'!r} is not allowed (allowed: {', '.join(schemes)})", reason="scheme"
        )
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise UnsafeURL("the URL names no host", reason="invalid")
    if parsed.userinfo:
        raise UnsafeURL("credentials in the URL are not allowed", reason="userinfo")
    if allowed_hosts is not None and not host_matches(host, parsed.port, allowed_hosts):
        raise UnsafeURL(f"host {_netloc(parsed)} is not an allowed host", reason="host_not_allowed")
    _check_host_name(host, allow_loopback=allow_loopback)
    return parsed


def _netloc(url: httpx.URL) -> str:
    return f"{url.host}:{url.port}" if url.port is not None else url.host


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, without zone ids (tests replace this to play a hostile DNS)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), DNS_TIMEOUT_SECONDS)
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    return found


async def resolve_and_check(host: str, port: int, *, allow_loopback: bool = False) -> list[str]:
    """The host's addresses, every one of them allowed; :class:`UnsafeURL` if any is not.

    All answers are checked, not only the first: a name that resolves to one public and one internal address
    is refused (a rebinding server would pick which one the connection gets). A name that does not resolve
    is a connection failure (``httpcore.ConnectError``: transient, retried), not a refusal.
    """
    literal = _check_host_name(host, allow_loopback=allow_loopback)
    if literal is not None:
        return [str(literal)]
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"host {host!r} does not resolve ({exc})") from exc
    if not addresses:
        raise httpcore.ConnectError(f"host {host!r} does not resolve (no addresses)")
    for address in addresses:
        check_address(address, allow_loopback=allow_loopback)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that resolves, checks, connects to the checked address, then checks the peer."""

    def __init__(self, *, allow_loopback: bool, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allow_loopback = allow_loopback
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_and_check(host, port, allow_loopback=self._allow_loopback)
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            peer = stream.get_extra_info("server_addr")
            try:
                if not peer:
                    raise UnsafeURL("cannot tell which address the connection reached", reason="unknown_peer")
                check_address(str(peer[0]), allow_loopback=self._allow_loopback)
            except UnsafeURL:
                await stream.aclose()
                raise
            return stream
        raise last_error or httpcore.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeURL("unix sockets are not allowed", reason="unix_socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~20-50 ms of CPU), and a transport is made
    per LWA token exchange. A context is shared safely between connections; nothing here changes it later."""
    return httpx.create_ssl_context(verify=verify, trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An ``httpx`` transport that refuses a request whose URL fails :func:`check_url` or whose connection
    would reach a forbidden address (checked after DNS resolution and on the connected socket)."""

    def __init__(
        self,
        *,
        allowed_hosts: Collection[str] | None = None,
        allow_loopback: bool = False,
        schemes: Collection[str] = ("https",),
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        verify: bool = True,
    ) -> None:
        context = _ssl_context(verify)
        super().__init__(trust_env=False, limits=limits, verify=context)
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        self.allow_loopback = allow_loopback
        self.schemes = tuple(schemes)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(allow_loopback=allow_loopback),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(
            request.url, allowed_hosts=self.allowed_hosts, allow_loopback=self.allow_loopback, schemes=self.schemes
        )
        return await super().handle_async_request(request)


def guarded_transport(
    *,
    allowed_hosts: Collection[str] | None = None,
    allow_loopback: bool = False,
    schemes: Collection[str] = ("https",),
    limits: httpx.Limits | None = None,
) -> GuardedTransport:
    """A transport for tenant-supplied URLs; ``allowed_hosts`` ``None`` means any public host."""
    kwargs: dict[str, Any] = {}
    if limits is not None:
        kwargs["limits"] = limits
    return GuardedTransport(allowed_hosts=allowed_hosts, allow_loopback=allow_loopback, schemes=schemes, **kwargs)


def guarded_client(transport: GuardedTransport, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` over ``transport`` that never follows a redirect and ignores proxy variables."""
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False, **kwargs)
