"""Building the SP-API client of one connection: checked URLs, decrypted secrets, guarded HTTP.

The only way the domain turns a stored connection into outbound calls. Every URL comes from
:mod:`acorn_api.amazon.endpoints` (Amazon's hosts, or an operator's list outside production) and every
request goes through :func:`acorn_api.core.netguard.guarded_transport`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx
from redis.asyncio import Redis

from acorn_api.amazon import crypto
from acorn_api.amazon.client import CallStats, ConnectionCredentials, DownloadLimits, RetryPolicy, SpApiClient
from acorn_api.amazon.endpoints import EndpointPolicy, policy
from acorn_api.amazon.lwa import AuthlibLwaExchanger, LwaTokenCache
from acorn_api.amazon.models import VendorConnection
from acorn_api.amazon.ratelimit import RatePlan, RedisTokenBucket
from acorn_api.amazon.regions import Region
from acorn_api.core.netguard import guarded_client
from acorn_api.settings import Settings

HTTP_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@dataclass(frozen=True)
class ConnectionTarget:
    """What a call needs of a connection, read inside a transaction and usable after it ended.

    Holding this (not the ORM row) lets a service release its database connection before calling Amazon.
    """

    id: uuid.UUID
    account_id: uuid.UUID
    region: str
    endpoint: str | None
    credentials_updated_at: datetime
    client_id_encrypted: bytes
    client_secret_encrypted: bytes
    refresh_token_encrypted: bytes
    marketplaces: tuple[str, ...] = ()
    vendor_codes: tuple[str, ...] = ()

    @classmethod
    def of(cls, connection: VendorConnection) -> ConnectionTarget:
        return cls(
            id=connection.id,
            account_id=connection.account_id,
            region=connection.region,
            endpoint=connection.endpoint,
            credentials_updated_at=connection.credentials_updated_at,
            client_id_encrypted=bytes(connection.lwa_client_id_encrypted),
            client_secret_encrypted=bytes(connection.lwa_client_secret_encrypted),
            refresh_token_encrypted=bytes(connection.lwa_refresh_token_encrypted),
            marketplaces=tuple(connection.marketplaces or ()),
            vendor_codes=tuple(connection.vendor_codes or ()),
        )


def http_client(settings: Settings) -> httpx.AsyncClient:
    """One per worker (or per call): guarded transport, no redirects, no proxy variables."""
    return guarded_client(policy(settings).transport(limits=HTTP_LIMITS))


def token_cache(settings: Settings) -> LwaTokenCache:
    """One per worker: LWA exchanges go through a guarded transport too (one per exchange)."""
    rules = policy(settings)
    return LwaTokenCache(exchanger=AuthlibLwaExchanger(transport_factory=rules.transport))


def credentials_for(settings: Settings, connection: VendorConnection | ConnectionTarget) -> ConnectionCredentials:
    """The connection's secrets and URLs; :class:`~acorn_api.amazon.endpoints.EndpointNotAllowed` if its endpoint
    is not (or no longer) allowed here, before any secret is decrypted."""
    target = connection if isinstance(connection, ConnectionTarget) else ConnectionTarget.of(connection)
    rules: EndpointPolicy = policy(settings)
    base_url = rules.api_base_url(target.region, target.endpoint)
    token_url = rules.token_url(target.endpoint)
    return ConnectionCredentials(
        # a new key after a credential change, so a cached token of the old credentials is not reused
        connection_key=f"{target.id}:{target.credentials_updated_at.timestamp():.0f}",
        region=Region(target.region),
        lwa_client_id=crypto.decrypt(settings, target.client_id_encrypted),
        lwa_client_secret=crypto.decrypt(settings, target.client_secret_encrypted),
        lwa_refresh_token=crypto.decrypt(settings, target.refresh_token_encrypted),
        endpoint_override=base_url if target.endpoint else None,
        rate_limit_key=str(target.id),
        token_url=token_url,
    )


def make_client(
    settings: Settings,
    redis: Redis,
    http: httpx.AsyncClient,
    token_cache: LwaTokenCache,
    connection: VendorConnection | ConnectionTarget,
    *,
    stats: CallStats | None = None,
    retry: RetryPolicy | None = None,
    rate_plans: Mapping[str, RatePlan] | None = None,
) -> SpApiClient:
    """An SP-API client for one connection; its rate-limit buckets are shared (Redis) by every worker."""
    credentials = credentials_for(settings, connection)
    limiter = RedisTokenBucket(
        redis, str(connection.id), plans=rate_plans, key_prefix=f"{settings.redis_key_prefix}:spapi:ratelimit"
    )
    return SpApiClient(
        http,
        redis,
        credentials,
        token_cache,
        retry,
        rate_limiter=limiter,
        stats=stats,
        max_rate_wait=settings.spapi_max_rate_limit_wait_seconds,
        download_limits=DownloadLimits(
            max_bytes=settings.spapi_report_max_bytes,
            max_decompressed_bytes=settings.spapi_report_max_decompressed_bytes,
        ),
        check_report_url=policy(settings).check_report_url,
    )
