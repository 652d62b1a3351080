"""Rate limits per credential (by role) and on the token endpoint, with RateLimit-* headers."""

from __future__ import annotations

import httpx

from tests.accounts.conftest import AppClientFactory
from tests.accounts.factories import basic, bearer, create_api_key, create_client
from tests.conftest import Tenant

LIMITS = {"admin": 1000, "purchasing": 3, "operations": 3, "finance": 3, "viewer": 3, "scoped": 2}


async def test_successful_responses_carry_ratelimit_headers(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/stores", headers=account.headers(account.keys["viewer"]))
    assert r.status_code == 200
    assert r.headers["ratelimit-limit"] == "600"
    assert r.headers["ratelimit-remaining"] == "599"
    assert int(r.headers["ratelimit-reset"]) >= 0


async def test_the_request_over_the_limit_is_429_with_retry_after(
    client_with: AppClientFactory, account: Tenant
) -> None:
    async with client_with(rate_limits_per_minute=LIMITS) as c:
        viewer = account.headers(account.keys["viewer"])
        remaining = [(await c.get("/v1/stores", headers=viewer)).headers["ratelimit-remaining"] for _ in range(3)]
        r = await c.get("/v1/stores", headers=viewer)
    assert remaining == ["2", "1", "0"]
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["ratelimit-limit"] == "3"
    assert r.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(r.headers["retry-after"]) <= 20  # one token refills in 60/3 s


async def test_limits_are_per_credential(client_with: AppClientFactory, account: Tenant) -> None:
    async with client_with(rate_limits_per_minute=LIMITS) as c:
        for _ in range(3):
            await c.get("/v1/stores", headers=account.headers(account.keys["viewer"]))
        other = await c.get("/v1/stores", headers=account.headers(account.keys["finance"]))
    assert other.status_code == 200


async def test_scoped_credentials_use_the_scoped_limit(client_with: AppClientFactory, account: Tenant) -> None:
    async with client_with(rate_limits_per_minute=LIMITS) as c:
        key = await create_api_key(c, account, role=None, scopes=["stores:read"])
        statuses = [(await c.get("/v1/stores", headers=bearer(key["key"]))).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_token_endpoint_is_limited_per_client(client_with: AppClientFactory, account: Tenant) -> None:
    async with client_with(token_rate_limit_per_client=2, token_rate_limit_per_address=100) as c:
        oauth = await create_client(c, account, role="viewer")
        wrong = basic(oauth["client_id"], "acc_guess_" + "x" * 40)
        statuses = [
            (await c.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=wrong)).status_code
            for _ in range(3)
        ]
        right = await c.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(oauth["client_id"], oauth["client_secret"]),
        )
    assert statuses == [401, 401, 429]
    assert right.status_code == 429  # guessing a client's secret locks out guesses, whoever makes them
    assert "retry-after" in right.headers


async def test_token_endpoint_is_limited_per_source_address(
    client_with: AppClientFactory, account: Tenant, redis: object
) -> None:
    import secrets

    async with client_with(
        token_rate_limit_per_client=100, token_rate_limit_per_address=2, redis_key_prefix=f"rl-{secrets.token_hex(4)}"
    ) as c:
        statuses = [
            (
                await c.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    headers=basic(f"acc_{secrets.token_hex(6)}", "whatever"),
                )
            ).status_code
            for _ in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_the_bucket_refills_over_time(client_with: AppClientFactory, account: Tenant) -> None:
    import asyncio

    async with client_with(rate_limits_per_minute={**LIMITS, "viewer": 60}) as c:  # one token a second
        viewer = account.headers(account.keys["viewer"])
        statuses = [(await c.get("/v1/stores", headers=viewer)).status_code for _ in range(70)]
        await asyncio.sleep(1.1)
        again = await c.get("/v1/stores", headers=viewer)
    assert statuses[:60] == [200] * 60
    assert 429 in statuses
    assert again.status_code == 200


async def test_an_unreachable_limiter_lets_requests_through(client_with: AppClientFactory, account: Tenant) -> None:
    """Fail open: an outage of the limiter's Redis is logged, not turned into an outage of the API."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    async with client_with(redis_url=f"redis://127.0.0.1:{port}/0") as c:
        r = await c.get("/v1/stores", headers=account.headers(account.keys["viewer"]))
    assert r.status_code == 200
    assert "ratelimit-limit" not in r.headers
