"""Where the connector may send a connection's secrets and requests: Amazon's hosts, or an operator's list.

- ``production`` / ``staging``: a connection endpoint is one of Amazon's SP-API hosts (the three regional
  production hosts and their sandbox hosts, over https) or none (the region's host); LWA is always
  ``https://api.amazon.com/auth/o2/token``; report documents come only from Amazon's report hosts.
- elsewhere (``development``, ``test``): an operator may add hosts with ``ACORN_SPAPI_ALLOWED_HOSTS``
  (``acorn-api dev`` adds its simulator). The LWA token URL of such a connection is ``ACORN_LWA_TOKEN_URL``
  when set, else the endpoint's own ``/auth/o2/token`` (the simulator serves LWA): it is only ever derived
  from a host the operator listed, never from whatever a tenant typed.

Every request also goes through :func:`acorn_api.core.netguard.guarded_transport`: private, link-local,
unique-local and metadata addresses are refused after DNS resolution and on the connected socket; loopback
only in development and test (for a listed host such as the simulator on 127.0.0.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from acorn_api.amazon.regions import LWA_TOKEN_PATH, LWA_TOKEN_URL, REGION_HOSTS, Region
from acorn_api.core.netguard import GuardedTransport, UnsafeURL, check_url, guarded_transport, host_matches
from acorn_api.settings import Settings

AMAZON_SPAPI_HOSTS = frozenset(
    {httpx.URL(url).host for url in REGION_HOSTS.values()}
    | {"sandbox." + httpx.URL(url).host for url in REGION_HOSTS.values()}
)
AMAZON_LWA_HOST = httpx.URL(LWA_TOKEN_URL).host
#: Pre-signed report document URLs: Amazon's S3 buckets per region, and the CloudFront host its docs name.
AMAZON_REPORT_HOST = re.compile(
    r"^(tortuga-prod-(na|eu|fe)\.s3([.-][a-z0-9-]+)*\.amazonaws\.com|d34o8swod1owfl\.cloudfront\.net)$"
)
_LOCAL_ENVIRONMENTS = ("development", "test")


class EndpointNotAllowed(UnsafeURL):
    """A connection endpoint (or a URL derived from one) the connector will not call."""


@dataclass(frozen=True)
class EndpointPolicy:
    """The connector's outbound rules for one deployment (built from its settings)."""

    environment: str
    operator_hosts: frozenset[str]
    lwa_token_url_override: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointPolicy:
        return cls(settings.environment, frozenset(settings.spapi_allowed_hosts), settings.lwa_token_url)

    @property
    def is_local(self) -> bool:
        return self.environment in _LOCAL_ENVIRONMENTS

    @property
    def strict(self) -> bool:
        return self.environment in ("production", "staging")

    @property
    def allow_loopback(self) -> bool:
        return self.is_local

    def _operator_hosts(self) -> frozenset[str]:
        return frozenset() if self.strict else self.operator_hosts

    def check_endpoint(self, endpoint: str) -> str:
        """The endpoint without a trailing slash if a connection may use it; else :class:`EndpointNotAllowed`."""
        try:
            url = check_url(endpoint, schemes=("https", "http"), allow_loopback=self.allow_loopback)
        except UnsafeURL as exc:
            raise EndpointNotAllowed(str(exc), reason=exc.reason) from exc
        if url.query or url.fragment or url.path not in ("", "/"):
            raise EndpointNotAllowed("an endpoint is a scheme and host only, without a path", reason="path")
        host = url.host.lower()
        if url.scheme == "https" and host in AMAZON_SPAPI_HOSTS and url.port in (None, 443):
            return str(endpoint).rstrip("/")
        operator = self._operator_hosts()
        if operator and _listed(url, operator):
            return str(endpoint).rstrip("/")
        if self.strict:
            raise EndpointNotAllowed(
                f"in {self.environment} a connection endpoint must be one of Amazon's SP-API hosts "
                f"(https://{', https://'.join(sorted(AMAZON_SPAPI_HOSTS))})",
                reason="host_not_allowed",
            )
        raise EndpointNotAllowed(
            f"host {url.host} is neither an Amazon SP-API host nor listed by the operator in ACORN_SPAPI_ALLOWED_HOSTS",
            reason="host_not_allowed",
        )

    def api_base_url(self, region: Region | str, endpoint: str | None) -> str:
        if endpoint:
            return self.check_endpoint(endpoint)
        return REGION_HOSTS[Region(region)]

    def token_url(self, endpoint: str | None) -> str:
        """Where the refresh token is exchanged: Amazon's LWA, unless an operator-listed host serves it."""
        if not endpoint or self.strict:
            return LWA_TOKEN_URL
        base = self.check_endpoint(endpoint)
        if httpx.URL(base).host.lower() in AMAZON_SPAPI_HOSTS:
            return LWA_TOKEN_URL
        if self.lwa_token_url_override:
            try:
                check_url(
                    self.lwa_token_url_override,
                    schemes=("https", "http"),
                    allowed_hosts=self._operator_hosts() | {AMAZON_LWA_HOST},
                    allow_loopback=self.allow_loopback,
                )
            except UnsafeURL as exc:
                raise EndpointNotAllowed(f"ACORN_LWA_TOKEN_URL refused: {exc}", reason=exc.reason) from exc
            return self.lwa_token_url_override
        return base + LWA_TOKEN_PATH

    def check_report_url(self, url: str) -> httpx.URL:
        """A report document URL the connector may download (pre-signed, no credentials are sent to it)."""
        try:
            parsed = check_url(url, schemes=("https", "http"), allow_loopback=self.allow_loopback)
        except UnsafeURL as exc:
            raise EndpointNotAllowed(f"report document URL refused: {exc}", reason=exc.reason) from exc
        if parsed.scheme == "https" and AMAZON_REPORT_HOST.match(parsed.host.lower()):
            return parsed
        if self.is_local and _listed(parsed, self._operator_hosts()):
            return parsed
        raise EndpointNotAllowed(
            f"report document URL refused: host {parsed.host} is not one of Amazon's report document hosts",
            reason="host_not_allowed",
        )

    def transport(self, *, limits: httpx.Limits | None = None) -> GuardedTransport:
        """The guarded transport for SP-API and LWA calls (report downloads are checked per URL on top)."""
        return guarded_transport(
            allowed_hosts=None,  # report hosts are a pattern: every URL is checked by the caller, addresses here
            allow_loopback=self.allow_loopback,
            schemes=("https",) if self.strict else ("https", "http"),
            limits=limits,
        )


def _listed(url: httpx.URL, hosts: frozenset[str]) -> bool:
    return host_matches(url.host, url.port, hosts)


def policy(settings: Settings) -> EndpointPolicy:
    return EndpointPolicy.from_settings(settings)
