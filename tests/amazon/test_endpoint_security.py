"""Connection endpoints are hostile until checked: hosts, addresses, secrets, report documents, rate limits."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from pydantic import ValidationError
from redis.asyncio import Redis

from acorn_api.amazon.client import ConnectionCredentials, DownloadLimits, RetryPolicy, SpApiClient
from acorn_api.amazon.endpoints import EndpointNotAllowed, EndpointPolicy
from acorn_api.amazon.errors import LwaAuthError, SpApiEndpointRefused, SpApiRateLimitWait, SpApiTooLarge
from acorn_api.amazon.lwa import AuthlibLwaExchanger, LwaCredentials, LwaToken, LwaTokenCache
from acorn_api.amazon.ratelimit import RatePlan, RedisTokenBucket
from acorn_api.amazon.regions import LWA_TOKEN_URL, Region
from acorn_api.amazon.wire import ReportDocument
from acorn_api.core.netguard import UnsafeURL, check_url, guarded_client, guarded_transport, resolve_and_check
from acorn_api.settings import Settings
from tests.amazon.test_sync_support import Served, connection_body, served, sim_config
from tests.conftest import Tenant

SIM = "127.0.0.1"
PRODUCTION = EndpointPolicy("production", frozenset(), None)
DEV = EndpointPolicy("development", frozenset({"127.0.0.1:8100", "10.1.2.3", "169.254.169.254"}), None)


# ---------------------------------------------------------------- the policy


def test_production_accepts_only_amazons_sp_api_hosts() -> None:
    for host in ("sellingpartnerapi-eu.amazon.com", "sandbox.sellingpartnerapi-fe.amazon.com"):
        assert PRODUCTION.check_endpoint(f"https://{host}/") == f"https://{host}"
    for bad in (
        "http://sellingpartnerapi-na.amazon.com",  # not https
        "https://sellingpartnerapi-na.amazon.com.evil.example",
        "https://evil.example",
        "http://127.0.0.1:8100",
        "https://sellingpartnerapi-na.amazon.com/some/path",
        "https://user:pw@sellingpartnerapi-na.amazon.com",
    ):
        with pytest.raises(EndpointNotAllowed):
            PRODUCTION.check_endpoint(bad)


def test_the_lwa_token_url_is_amazons_in_production_and_never_the_tenants_host() -> None:
    assert PRODUCTION.token_url(None) == LWA_TOKEN_URL
    assert PRODUCTION.token_url("https://sandbox.sellingpartnerapi-na.amazon.com") == LWA_TOKEN_URL
    assert DEV.token_url("http://127.0.0.1:8100") == "http://127.0.0.1:8100/auth/o2/token"  # listed: the simulator
    with pytest.raises(EndpointNotAllowed):
        DEV.token_url("https://attacker.example")  # unlisted: nothing is derived from it


def test_production_and_staging_refuse_an_operator_host_list() -> None:
    for environment in ("production", "staging"):
        with pytest.raises(ValidationError, match="SPAPI_ALLOWED_HOSTS"):
            Settings(environment=environment, spapi_allowed_hosts=["127.0.0.1:8100"])  # type: ignore[arg-type]
    assert Settings(spapi_allowed_hosts="127.0.0.1:8100, sim.local").spapi_allowed_hosts == [  # type: ignore[arg-type]
        "127.0.0.1:8100",
        "sim.local",
    ]


def test_a_listed_host_still_may_not_be_internal() -> None:
    with pytest.raises(EndpointNotAllowed) as private:
        DEV.check_endpoint("http://10.1.2.3")
    assert private.value.reason == "private"
    with pytest.raises(EndpointNotAllowed) as metadata:
        DEV.check_endpoint("http://169.254.169.254")
    assert metadata.value.reason == "metadata"
    assert DEV.check_endpoint("http://127.0.0.1:8100") == "http://127.0.0.1:8100"  # loopback: development only
    staging_like = EndpointPolicy("development", frozenset({"127.0.0.1:8100"}), None)
    with pytest.raises(EndpointNotAllowed):
        staging_like.check_endpoint("http://127.0.0.1:8101")  # the entry names a port


def test_report_documents_come_only_from_amazons_report_hosts_outside_development() -> None:
    s3 = "https://tortuga-prod-na.s3-external-1.amazonaws.com/%2FNinetyDays/amzn1.tortuga.3.x?X-Amz-Signature=y"
    assert PRODUCTION.check_report_url(s3).host == "tortuga-prod-na.s3-external-1.amazonaws.com"
    for bad in ("https://evil.example/doc", "http://127.0.0.1:8100/_simulator/documents/1", "https://169.254.169.254/"):
        with pytest.raises(EndpointNotAllowed):
            PRODUCTION.check_report_url(bad)
    assert DEV.check_report_url("http://127.0.0.1:8100/_simulator/documents/1")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://127.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/",
        "http://2130706433/",  # 127.0.0.1 as a decimal number
        "http://0x7f.0.0.1/",
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped 169.254.169.254
    ],
)
def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, schemes=("http",))


async def test_a_name_that_resolves_to_loopback_is_refused_after_dns() -> None:
    with pytest.raises(UnsafeURL) as refused:
        await resolve_and_check("localhost", 80, allow_loopback=False)
    assert refused.value.reason == "loopback"
    assert await resolve_and_check("localhost", 80, allow_loopback=True)


async def test_the_guarded_transport_refuses_before_connecting_and_never_follows_redirects(sim: Served) -> None:
    strict = guarded_client(guarded_transport(schemes=("http",), allow_loopback=False))
    async with strict:
        with pytest.raises(UnsafeURL):
            await strict.get(sim.url + "/_simulator/stats")
        with pytest.raises(UnsafeURL):  # a name, checked after resolution
            await strict.get(sim.url.replace("127.0.0.1", "localhost") + "/_simulator/stats")
    local = guarded_client(guarded_transport(schemes=("http",), allow_loopback=True, allowed_hosts=["127.0.0.1"]))
    async with local:
        assert (await local.get(sim.url + "/_simulator/stats")).status_code == 200
        assert local.follow_redirects is False


# ---------------------------------------------------------------- the API


@pytest.fixture(scope="module")
async def sim() -> Any:
    async with served(sim_config(purchase_orders=20)) as s:
        yield s


async def test_an_unlisted_endpoint_is_refused_with_a_422_naming_the_field(
    client: AsyncClient, account: Tenant
) -> None:
    r = await client.post(
        "/v1/connections", json=connection_body("https://attacker.example"), headers=account.headers()
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "endpoint"]
    assert "ACORN_SPAPI_ALLOWED_HOSTS" in r.json()["errors"][0]["msg"]
    r = await client.post("/v1/connections", json=connection_body("http://169.254.169.254"), headers=account.headers())
    assert r.status_code == 422


async def test_moving_a_connection_to_another_host_needs_new_secrets(client: AsyncClient, account: Tenant) -> None:
    """A connections:write credential cannot point the stored secrets at another host and call /test."""
    created = await client.post(
        "/v1/connections", json=connection_body("http://127.0.0.1:9"), headers=account.headers()
    )
    url = f"/v1/connections/{created.json()['id']}"
    for change in ({"endpoint": "http://127.0.0.1:10"}, {"region": "EU"}, {"endpoint": None}):
        r = await client.patch(url, json=change, headers=account.headers())
        assert r.status_code == 422, (change, r.text)
        assert {tuple(e["loc"]) for e in r.json()["errors"]} == {("body", "client_secret"), ("body", "refresh_token")}
        assert "stored secrets are only ever sent to the host they were stored for" in r.json()["detail"]
    same = await client.patch(
        url, json={"endpoint": "http://127.0.0.1:9", "name": "Same host"}, headers=account.headers()
    )
    assert same.status_code == 200, same.text
    moved = await client.patch(
        url,
        json={"endpoint": "http://127.0.0.1:10", "client_id": "a", "client_secret": "b", "refresh_token": "c"},
        headers=account.headers(),
    )
    assert moved.status_code == 200 and moved.json()["endpoint"] == "http://127.0.0.1:10"


# ---------------------------------------------------------------- downloads and rate limits


class _StaticTokens(LwaTokenCache):
    def __init__(self) -> None:
        async def exchange(url: str, creds: LwaCredentials) -> LwaToken:
            return LwaToken("tok", 3600)

        super().__init__(exchanger=exchange)


def _client(http: httpx.AsyncClient, redis: Redis, **kwargs: Any) -> SpApiClient:
    creds = ConnectionCredentials("k", Region.NA, "id", "secret", "token", endpoint_override="http://sim.test")
    return SpApiClient(http, redis, creds, _StaticTokens(), RetryPolicy(max_attempts=2, base_delay=0.01), **kwargs)


async def test_a_gzip_bomb_is_refused_once_it_passes_the_cap(settings: Settings) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MB of zeros in ~64 KB
    sent: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(200, stream=httpx.ByteStream(bomb))

    redis = Redis.from_url(settings.redis_url or "")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = _client(
            http, redis, download_limits=DownloadLimits(max_bytes=1024 * 1024, max_decompressed_bytes=1024 * 1024)
        )
        document = ReportDocument.model_validate(
            {"reportDocumentId": "d1", "url": "http://sim.test/doc", "compressionAlgorithm": "GZIP"}
        )
        with pytest.raises(SpApiTooLarge, match="decompressed"):
            await client.download_report_document(document)
        big = ReportDocument.model_validate({"reportDocumentId": "d2", "url": "http://sim.test/doc"})
        with pytest.raises(SpApiTooLarge, match="download"):
            await _client(
                http, redis, download_limits=DownloadLimits(max_bytes=16 * 1024, max_decompressed_bytes=1024 * 1024)
            ).download_report_document(big)
        small = gzip.compress(b'{"ok": true}')

        async def fine(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=httpx.ByteStream(small))

    async with httpx.AsyncClient(transport=httpx.MockTransport(fine)) as http:
        assert await _client(http, redis).download_report_document(document) == b'{"ok": true}'
    await redis.aclose()
    assert len(sent) == 2  # refused, not retried


async def test_a_report_url_off_the_allowed_hosts_is_never_fetched(settings: Settings) -> None:
    fetched: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, content=b"secret")

    redis = Redis.from_url(settings.redis_url or "")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = _client(http, redis, check_report_url=PRODUCTION.check_report_url)
        document = ReportDocument.model_validate(
            {"reportDocumentId": "d1", "url": "http://169.254.169.254/latest/meta-data/iam"}
        )
        with pytest.raises(SpApiEndpointRefused):
            await client.download_report_document(document)
    await redis.aclose()
    assert fetched == []


async def test_every_wait_for_a_rate_limit_token_has_a_maximum(settings: Settings) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"payload": {"transactionStatus": {"transactionId": "t", "status": "Success"}}})

    redis = Redis.from_url(settings.redis_url or "")
    limiter = RedisTokenBucket(
        redis, "wait-cap", plans={"getTransaction": RatePlan(0.001, 1)}, key_prefix=f"{settings.redis_key_prefix}:w"
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = _client(http, redis, rate_limiter=limiter, max_rate_wait=0.5)
        await client.get_transaction("t")
        with pytest.raises(SpApiRateLimitWait):  # the next token is 1000 s away: fail now, do not park
            await client.get_transaction("t")
        await limiter.reset("getTransaction")
    await redis.aclose()


async def test_lwa_refuses_a_token_url_at_an_internal_address() -> None:
    exchanger = AuthlibLwaExchanger(transport_factory=lambda: guarded_transport(schemes=("http", "https")))
    with pytest.raises(LwaAuthError) as refused:
        await exchanger("http://127.0.0.1:9/auth/o2/token", LwaCredentials("id", "secret", "token"))
    assert refused.value.error == "endpoint_refused"


async def test_an_oversized_api_response_is_refused_while_streaming(settings: Settings) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"[" + b" " * 200_000 + b"]"))

    redis = Redis.from_url(settings.redis_url or "")
    limiter = RedisTokenBucket(redis, "big", key_prefix=f"{settings.redis_key_prefix}:big")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = _client(http, redis, rate_limiter=limiter, max_response_bytes=64 * 1024)
        with pytest.raises(SpApiTooLarge):
            await client.get_transaction("t")
        await limiter.reset("getTransaction")
    await redis.aclose()


async def test_the_connected_peer_is_checked_again_at_connect_time() -> None:
    """Even when DNS said loopback (allowed here), a socket that reached an internal address is closed."""
    import httpcore

    from acorn_api.core.netguard import GuardedNetworkBackend

    closed: list[bool] = []

    class Stream(httpcore.AsyncNetworkStream):
        def get_extra_info(self, info: str) -> Any:
            return ("10.0.0.5", 443) if info == "server_addr" else None

        async def aclose(self) -> None:
            closed.append(True)

    class Backend(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            assert host == "127.0.0.1"  # connects to the address it checked, not the name again
            return Stream()

    guarded = GuardedNetworkBackend(allow_loopback=True, inner=Backend())
    with pytest.raises(UnsafeURL) as refused:
        await guarded.connect_tcp("127.0.0.1", 443)
    assert refused.value.reason == "private" and closed == [True]
