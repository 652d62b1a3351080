"""HSTS behind TLS, no docs in production, CORS from settings only (headers and 413: tests/core)."""

from __future__ import annotations

import httpx

from tests.accounts.conftest import AppClientFactory


async def test_hsts_behind_tls(client: httpx.AsyncClient) -> None:
    r = await client.get("https://test/healthz")
    assert r.headers["strict-transport-security"].startswith("max-age=")


async def test_no_docs_in_production(client_with: AppClientFactory) -> None:
    from pydantic import SecretStr

    from acorn_api.accounts.keys import generate_private_key_pem

    production = {
        "environment": "production",
        "api_key_pepper": SecretStr("p" * 32),
        "encryption_keys": [SecretStr("ZGV2LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24tMDAwMDE=")],
        "jwt_private_keys_pem": [SecretStr(generate_private_key_pem())],
    }
    async with client_with(**production) as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/redoc")).status_code == 404


async def test_cors_only_for_configured_origins(client_with: AppClientFactory, client: httpx.AsyncClient) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    r = await client.options("/v1/stores", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    async with client_with(cors_origins=["https://app.example"]) as c:
        r = await c.options("/v1/stores", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = await c.options("/v1/stores", headers={**preflight, "Origin": "https://evil.example"})
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"
