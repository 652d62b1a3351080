"""Outbound HTTP to URLs a tenant supplied: refuse internal addresses, before and while connecting.

A URL a tenant controls (a connection endpoint, a webhook URL, a report document URL named by a server) is
hostile until checked. Three layers, each usable alone:

- :func:`check_url` — static: scheme, no credentials in the URL, the host on an allow-list (when one is
  given), and an IP literal host not in a forbidden range.
- :func:`resolve_and_check` — the host's DNS answers, every one of them outside the forbidden ranges.
- :func:`guarded_transport` — an ``httpx`` transport that does both for every request and, at connect time,
  connects to an address it checked (no second DNS lookup that a rebinding server could answer
  differently) and checks the socket's peer address once more. Clients built with :func:`guarded_client`
  never follow redirects and ignore proxy environment variables.

Forbidden: every address that is not globally routable (private ranges, shared address space, link-local
— where cloud metadata lives —, unique-local, unspecified, reserved, documentation ranges), multicast, and
the metadata addresses by name; loopback only unless the caller allows it (development and tests, for an
explicitly listed host such as the SP-API simulator).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


class UnsafeURL(ValueError):
    """A URL or address that outbound calls must not reach; ``reason`` is a short stable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def forbidden_reason(address: str | IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``address`` must not be reached (``None`` when it may)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return forbidden_reason(mapped, allow_loopback=allow_loopback)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_link_local:
        return "link_local"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "private"
    return None


def check_address(address: str | IPAddress, *, allow_loopback: bool = False) -> None:
    reason = forbidden_reason(address, allow_loopback=allow_loopback)
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
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


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
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeURL(f"not a valid URL: {exc}", reason="invalid") from exc
    if parsed.scheme not in schemes:
        raise UnsafeURL(f"scheme {parsed.scheme or '(none)'!r} is not allowed ({', '.join(schemes)})", reason="scheme")
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise UnsafeURL("the URL names no host", reason="invalid")
    if parsed.userinfo:
        raise UnsafeURL("credentials in the URL are not allowed", reason="userinfo")
    if host in METADATA_HOSTNAMES:
        raise UnsafeURL(f"host {host} is a cloud metadata service", reason="metadata")
    if allowed_hosts is not None and not host_matches(host, parsed.port, allowed_hosts):
        raise UnsafeURL(f"host {_netloc(parsed)} is not an allowed host", reason="host_not_allowed")
    literal = _literal_ip(host)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
    return parsed


def _netloc(url: httpx.URL) -> str:
    return f"{url.host}:{url.port}" if url.port is not None else url.host


async def resolve_and_check(host: str, port: int, *, allow_loopback: bool = False) -> list[str]:
    """The host's addresses, every one of them allowed; :class:`UnsafeURL` if any is not.

    All answers are checked, not only the first: a name that resolves to one public and one internal address
    is refused (a rebinding server would pick which one the connection gets).
    """
    literal = _literal_ip(host)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
        return [str(literal)]
    if host.lower().rstrip(".") in METADATA_HOSTNAMES:
        raise UnsafeURL(f"host {host} is a cloud metadata service", reason="metadata")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        check_address(address, allow_loopback=allow_loopback)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no addresses")
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
                check_address(str(peer[0]).split("%", 1)[0], allow_loopback=self._allow_loopback)
            except UnsafeURL:
                await stream.aclose()
                raise
            return stream
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeURL("unix sockets are not allowed", reason="unix_socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


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
        super().__init__(trust_env=False, limits=limits, verify=verify)
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        self.allow_loopback = allow_loopback
        self.schemes = tuple(schemes)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
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
