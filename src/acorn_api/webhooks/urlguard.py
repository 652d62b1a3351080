"""The webhook URL policy, on top of the service's one SSRF guard, :mod:`acorn_api.core.netguard`.

A webhook URL is checked when saved (:func:`check_url_resolved`: the static checks, then every address the
name resolves to) and again on every connection (:func:`guarded_client`: resolved, checked, connected to the
checked address, peer checked once more; no redirects, no proxies from the environment). The address rules
are netguard's: private, shared, link-local (cloud metadata), unique-local, metadata, multicast, reserved and
unspecified addresses are always refused, IPv4 carried in IPv6 is judged as IPv4, numeric hosts in odd
spellings (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) are refused.

The webhook policy adds: ``https`` only and no loopback, except that :func:`policy_for` allows plain http
and loopback exactly when the settings allow loopback URLs (``development`` and ``test``: the test suite's
receiver listens on 127.0.0.1); no ``#fragment``; at most :data:`MAX_URL_LENGTH` characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpcore
import httpx

from acorn_api.core import netguard
from acorn_api.core.netguard import UnsafeURL
from acorn_api.settings import Settings

MAX_URL_LENGTH = 2048

#: The webhook code's name for :class:`acorn_api.core.netguard.UnsafeURL` (the same class).
UnsafeUrl = UnsafeURL


@dataclass(frozen=True)
class Policy:
    allow_loopback: bool
    allow_http: bool

    @property
    def schemes(self) -> tuple[str, ...]:
        return ("https", "http") if self.allow_http else ("https",)


def policy_for(settings: Settings) -> Policy:
    """Loopback and plain http only on a developer's machine and in the test suite."""
    return Policy(allow_loopback=settings.allows_loopback_urls, allow_http=settings.allows_loopback_urls)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def check_url(url: str, policy: Policy) -> Target:
    """The checks that need no DNS: length, scheme, credentials, fragment, host spelling, an IP literal."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"must be at most {MAX_URL_LENGTH} characters", reason="too_long")
    parsed = netguard.check_url(url, allow_loopback=policy.allow_loopback, schemes=policy.schemes)
    if parsed.fragment:
        raise UnsafeUrl("must not contain a #fragment", reason="fragment")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(scheme=parsed.scheme, host=parsed.host.rstrip("."), port=port)


async def check_url_resolved(url: str, policy: Policy) -> Target:
    """:func:`check_url`, then every address of the host after DNS resolution; a name must resolve."""
    target = check_url(url, policy)
    try:
        await netguard.resolve_and_check(target.host, target.port, allow_loopback=policy.allow_loopback)
    except httpcore.ConnectError as exc:
        raise UnsafeUrl(str(exc), reason="unresolvable") from exc
    return target


def guarded_client(policy: Policy, *, timeout: float, max_connections: int = 100) -> httpx.AsyncClient:
    """An HTTP client for webhook URLs: guarded connections, no redirects, no proxies from the environment."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    transport = netguard.guarded_transport(allow_loopback=policy.allow_loopback, schemes=policy.schemes, limits=limits)
    return netguard.guarded_client(transport, timeout=httpx.Timeout(timeout))
