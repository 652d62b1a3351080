"""LWA refresh-token exchange (through authlib) and the per-connection access-token cache."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from acorn_api.amazon.errors import LwaAuthError, LwaUnavailable
from acorn_api.amazon.lwa import AuthlibLwaExchanger, LwaCredentials, LwaToken, LwaTokenCache
from acorn_api.amazon.regions import LWA_TOKEN_URL

CREDS = LwaCredentials(client_id="amzn1.app.client", client_secret="s3cret", refresh_token="Atzr|refresh")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


@pytest.mark.asyncio
async def test_exchange_posts_refresh_token_grant_with_client_credentials_in_body() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(LWA_TOKEN_URL).respond(
            200,
            json={"access_token": "Atza|abc", "token_type": "bearer", "expires_in": 3600},
        )
        token = await AuthlibLwaExchanger()(LWA_TOKEN_URL, CREDS)
    assert token == LwaToken(access_token="Atza|abc", expires_in=3600.0)
    assert route.call_count == 1
    form = _form(route.calls[0].request)
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "Atzr|refresh",
        "client_id": "amzn1.app.client",
        "client_secret": "s3cret",
    }
    assert route.calls[0].request.headers["content-type"].startswith("application/x-www-form-urlencoded")


@pytest.mark.asyncio
async def test_lwa_error_response_becomes_typed_error_with_lwa_code() -> None:
    with respx.mock() as mock:
        mock.post(LWA_TOKEN_URL).respond(
            400, json={"error": "invalid_grant", "error_description": "The request has an invalid grant"}
        )
        with pytest.raises(LwaAuthError) as excinfo:
            await AuthlibLwaExchanger()(LWA_TOKEN_URL, CREDS)
    assert excinfo.value.error == "invalid_grant"
    assert not excinfo.value.retryable
    assert not isinstance(excinfo.value, LwaUnavailable)


@pytest.mark.asyncio
async def test_lwa_5xx_and_timeout_are_transient() -> None:
    with respx.mock() as mock:
        route = mock.post(LWA_TOKEN_URL)
        route.side_effect = [httpx.Response(503, text="busy"), httpx.ConnectTimeout("slow")]
        with pytest.raises(LwaUnavailable) as first:
            await AuthlibLwaExchanger()(LWA_TOKEN_URL, CREDS)
        assert first.value.status == 503
        with pytest.raises(LwaUnavailable) as second:
            await AuthlibLwaExchanger()(LWA_TOKEN_URL, CREDS)
    assert first.value.retryable and second.value.retryable
    assert second.value.error == "timeout"


@pytest.mark.asyncio
async def test_cache_reuses_token_until_60s_before_expiry() -> None:
    clock = FakeClock()
    cache = LwaTokenCache(clock=clock)
    with respx.mock() as mock:
        route = mock.post(LWA_TOKEN_URL)
        route.side_effect = [
            httpx.Response(200, json={"access_token": "tok-1", "expires_in": 3600}),
            httpx.Response(200, json={"access_token": "tok-2", "expires_in": 3600}),
        ]
        assert await cache.get("conn-1", LWA_TOKEN_URL, CREDS) == "tok-1"
        clock.now += 3600 - 61
        assert await cache.get("conn-1", LWA_TOKEN_URL, CREDS) == "tok-1"
        assert route.call_count == 1
        clock.now += 2  # now inside the 60 s safety margin
        assert await cache.get("conn-1", LWA_TOKEN_URL, CREDS) == "tok-2"
        assert route.call_count == 2


@pytest.mark.asyncio
async def test_fifty_concurrent_callers_trigger_exactly_one_refresh_per_key() -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        form = _form(request)
        calls.append(form["refresh_token"])
        await asyncio.sleep(0.05)  # a slow LWA makes the callers really overlap
        return httpx.Response(200, json={"access_token": f"tok-for-{form['refresh_token']}", "expires_in": 3600})

    cache = LwaTokenCache(exchanger=AuthlibLwaExchanger(transport=httpx.MockTransport(handler)))
    other = LwaCredentials("amzn1.app.client", "s3cret", "Atzr|other")
    results = await asyncio.gather(
        *(cache.get("conn-a", LWA_TOKEN_URL, CREDS) for _ in range(50)),
        *(cache.get("conn-b", LWA_TOKEN_URL, other) for _ in range(50)),
    )
    assert results[:50] == ["tok-for-Atzr|refresh"] * 50
    assert results[50:] == ["tok-for-Atzr|other"] * 50
    assert sorted(calls) == ["Atzr|other", "Atzr|refresh"]
    assert cache.refresh_count == 2


@pytest.mark.asyncio
async def test_invalidate_drops_only_the_stale_token() -> None:
    tokens = iter(["tok-1", "tok-2", "tok-3"])

    async def exchanger(url: str, creds: LwaCredentials) -> LwaToken:
        return LwaToken(next(tokens), 3600)

    cache = LwaTokenCache(exchanger=exchanger)
    assert await cache.get("k", LWA_TOKEN_URL, CREDS) == "tok-1"
    cache.invalidate("k", "tok-1")
    assert await cache.get("k", LWA_TOKEN_URL, CREDS) == "tok-2"
    # a late request that failed with the old token must not throw away the fresh one
    cache.invalidate("k", "tok-1")
    assert await cache.get("k", LWA_TOKEN_URL, CREDS) == "tok-2"
    cache.invalidate("k")
    assert await cache.get("k", LWA_TOKEN_URL, CREDS) == "tok-3"


@pytest.mark.asyncio
async def test_failed_refresh_is_not_cached_and_lock_is_released() -> None:
    attempts = 0

    async def exchanger(url: str, creds: LwaCredentials) -> LwaToken:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise LwaUnavailable("down", error="http_error", status=503)
        return LwaToken("tok-ok", 3600)

    cache = LwaTokenCache(exchanger=exchanger)
    with pytest.raises(LwaUnavailable):
        await cache.get("k", LWA_TOKEN_URL, CREDS)
    assert await asyncio.wait_for(cache.get("k", LWA_TOKEN_URL, CREDS), 1) == "tok-ok"
