"""OWASP API7 (server side request forgery) and API8 (security misconfiguration), through the HTTP API.

The address rules themselves (every private, shared, link-local, metadata and reserved range, IPv4 spelled
as one number, hex, octal or inside IPv6, DNS answers, the connected socket) are unit-tested in
tests/webhooks/test_urlguard.py and tests/amazon/test_endpoint_security.py. Here every URL a tenant can
give — a webhook endpoint's ``url`` and a connection's ``endpoint``, on creation and on update — is tried with
the same hostile list through the API: 422 naming the field, nothing stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.keys import generate_private_key_pem
from acorn_api.core.db import Resources
from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.conftest import Tenant
from tests.test_isolation import _fingerprint

HOSTILE = [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://[fd00:ec2::254]/latest/meta-data/",  # AWS IMDS over IPv6
    "https://10.0.0.1/x",
    "https://172.16.5.4/x",
    "https://192.168.1.1/x",
    "https://100.64.0.1/x",  # shared address space
    "https://0.0.0.0/x",
    "https://[::ffff:10.0.0.1]/x",  # IPv4 inside IPv6
    "https://167772161/x",  # 10.0.0.1 as one number
    "https://0x0a000001/x",  # in hex
    "https://012.0.0.1/x",  # in octal
    "https://[fe80::1]/x",
    "https://[::]/x",
    "file:///etc/passwd",
    "gopher://10.0.0.1:6379/_FLUSHALL",
    "https://user:pw@sellingpartnerapi-na.amazon.com/",
]

CONNECTION = {
    "name": "SSRF check",
    "region": "NA",
    "marketplaces": ["US"],
    "vendor_codes": ["ACME1"],
    "client_id": "c",
    "client_secret": "s",
    "refresh_token": "r",
}


@pytest.mark.parametrize("url", HOSTILE)
async def test_hostile_urls_are_refused_on_every_route_that_takes_one(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, url: str
) -> None:
    h = account.headers()
    hook = await client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=h)
    connection = await client.post("/v1/connections", json={**CONNECTION, "endpoint": "http://127.0.0.1:9"}, headers=h)
    assert hook.status_code == 201 and connection.status_code == 201, (hook.text, connection.text)
    before = await _fingerprint(session, account.id)
    attempts: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/v1/webhook-endpoints", {"url": url}, "url"),
        ("PATCH", f"/v1/webhook-endpoints/{hook.json()['id']}", {"url": url}, "url"),
        ("POST", "/v1/connections", {**CONNECTION, "endpoint": url}, "endpoint"),
        # moving a connection needs its secrets again; with them, the hostile host is still refused
        (
            "PATCH",
            f"/v1/connections/{connection.json()['id']}",
            {"endpoint": url, "client_id": "c2", "client_secret": "s2", "refresh_token": "r2"},
            "endpoint",
        ),
    ]
    for method, path, body, field in attempts:
        r = await client.request(method, path, json=body, headers=h)
        assert r.status_code == 422, f"{method} {path} with {url}: {r.status_code} {r.text}"
        assert ["body", field] in [e["loc"][:2] for e in r.json()["errors"]], r.text
    assert await _fingerprint(session, account.id) == before


# --- misconfiguration ----------------------------------------------------------------------------------------


def _production(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "environment": "production",
            "api_key_pepper": SecretStr("p" * 32),
            "encryption_keys": [SecretStr("ZGV2LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24tMDAwMDE=")],
            "jwt_private_keys_pem": [SecretStr(generate_private_key_pem())],
            **overrides,
        }
    )


@pytest.fixture
def production_app(settings: Settings, sessionmaker: Any, redis: Any) -> FastAPI:
    app = create_app(
        _production(settings, cors_origins=["https://app.brand.example"]),
        resources=Resources(engine=None, sessionmaker=sessionmaker, redis=redis),
    )
    boom = APIRouter()

    @boom.get("/v1/boom")
    async def explode() -> None:
        raise RuntimeError("connection to postgresql://acorn:hunter2@db.internal failed")

    app.include_router(boom)
    return app


async def test_production_publishes_no_docs_no_schema_and_no_internals(production_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=production_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.brand.example") as c:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/static/docs/swagger-ui.css"):
            r = await c.get(path)
            assert r.status_code == 404, f"{path}: {r.status_code}"
        r = await c.get("/v1/boom")
        assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
        for leak in ("hunter2", "postgresql://", "Traceback", "RuntimeError", 'File "', "db.internal"):
            assert leak not in r.text, leak
        assert set(r.json()) <= {"type", "title", "status", "detail", "instance", "request_id"}
        assert "server" not in r.headers and "x-powered-by" not in r.headers
        assert r.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_answers_only_the_configured_origin_in_production(production_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=production_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.brand.example") as c:
        for origin in ("https://evil.example", "null", "https://app.brand.example.evil.example"):
            r = await c.options("/v1/stores", headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"})
            assert r.headers.get("access-control-allow-origin") not in (origin, "*"), origin
            assert r.headers.get("access-control-allow-credentials") != "true"
        ok = await c.options(
            "/v1/stores", headers={"Origin": "https://app.brand.example", "Access-Control-Request-Method": "GET"}
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.brand.example"


async def test_validation_errors_echo_no_internals(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/stores", content=b'{"code": ', headers={**account.headers(), "Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422) and "Traceback" not in r.text and "json.decoder" not in r.text
    r = await client.get("/v1/stores/not-a-uuid", headers=account.headers())
    assert r.status_code in (404, 422) and "Traceback" not in r.text
