"""The API conventions every route inherits: problem+json, request ids, headers, limits, auth basics."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.models import ApiKey
from acorn_api.accounts.scopes import Role
from acorn_api.core.time import utcnow
from tests.conftest import AccountFactory, Tenant
from tests.stores.factories import store_body

PROBLEM = "application/problem+json"


async def test_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == 404
    assert body["instance"] == "/v1/nothing-here"
    assert body["request_id"] == r.headers["x-request-id"]


async def test_wrong_method_is_a_405_problem(client: AsyncClient) -> None:
    r = await client.put("/v1/stores")
    assert r.status_code == 405
    assert r.headers["content-type"] == PROBLEM
    assert "allow" in r.headers


async def test_request_id_is_echoed_when_sane(client: AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "erp-run-42"})
    assert r.headers["x-request-id"] == "erp-run-42"


async def test_request_id_is_replaced_when_not_sane(client: AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 36


async def test_security_headers_on_every_response(client: AsyncClient) -> None:
    for r in (await client.get("/healthz"), await client.get("/v1/missing")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"


async def test_oversized_body_is_413_problem(client: AsyncClient, account: Tenant, app: FastAPI) -> None:
    limit = app.state.settings.max_body_bytes
    r = await client.post(
        "/v1/stores",
        content=b"{" + b" " * limit + b"}",
        headers={**account.headers(), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/payload-too-large")


async def test_unexpected_error_is_a_500_problem_without_internals(app: FastAPI) -> None:
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("secret database password is hunter2")

    app.include_router(boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    assert "hunter2" not in r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_no_credential_is_401_with_challenge(client: AsyncClient) -> None:
    r = await client.get("/v1/stores")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "authorization",
    ["Bearer acn_abcdefghijkm_wrongsecret", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer a.b.c"],
)
async def test_bad_credentials_are_401(client: AsyncClient, authorization: str) -> None:
    r = await client.get("/v1/stores", headers={"Authorization": authorization})
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM


async def test_a_key_with_the_right_prefix_but_wrong_secret_is_401(client: AsyncClient, account: Tenant) -> None:
    forged = account.admin_key[:-4] + "AAAA"
    r = await client.get("/v1/stores", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_revoked_and_expired_keys_are_401(client: AsyncClient, account: Tenant, session: AsyncSession) -> None:
    for column in ("revoked_at", "expires_at"):
        prefix = "_".join(account.keys["viewer"].split("_")[:2])
        await session.execute(update(ApiKey).where(ApiKey.prefix == prefix).values({column: utcnow() - timedelta(1)}))
        await session.flush()
        r = await client.get("/v1/stores", headers=account.headers(account.keys["viewer"]))
        assert r.status_code == 401, column
        await session.execute(update(ApiKey).where(ApiKey.prefix == prefix).values(revoked_at=None, expires_at=None))
        await session.flush()


async def test_a_read_only_key_cannot_write(client: AsyncClient, account: Tenant) -> None:
    r = await client.post("/v1/stores", json=store_body(), headers=account.headers(account.keys["viewer"]))
    assert r.status_code == 403
    assert r.json()["type"].endswith("/insufficient-scope")
    assert r.json()["required_scopes"] == ["stores:write"]


async def test_a_read_only_key_can_read(client: AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/stores", headers=account.headers(account.keys["viewer"]))
    assert r.status_code == 200
    assert r.json() == {"data": [], "next_cursor": None, "has_more": False}


async def test_a_role_without_the_scope_is_403(client: AsyncClient, make_account: AccountFactory) -> None:
    tenant = await make_account(roles=(Role.finance,))
    r = await client.post("/v1/stores", json=store_body(), headers=tenant.headers(tenant.keys["finance"]))
    assert r.status_code == 403


async def test_healthz_answers_without_credentials(client: AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.json() == {"status": "ok"}


async def test_readyz_checks_database_and_redis(client: AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_metrics_count_requests_by_route_template(client: AsyncClient, account: Tenant, app: FastAPI) -> None:
    store = (await client.post("/v1/stores", json=store_body(), headers=account.headers())).json()
    await client.get(f"/v1/stores/{store['id']}", headers=account.headers())
    app.state.settings = app.state.settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    text = (await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).text
    assert 'route="/v1/stores/{store_id}"' in text
    assert store["id"] not in text
    assert "acorn_http_request_duration_seconds_bucket" in text


async def test_405_lists_every_method_of_the_path(client: AsyncClient, account: Tenant) -> None:
    r = await client.request("OPTIONS", "/v1/stores/00000000-0000-0000-0000-000000000001", headers=account.headers())
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, PATCH"


async def test_malformed_if_match_is_422_on_the_header(client: AsyncClient, account: Tenant) -> None:
    store = (await client.post("/v1/stores", json=store_body(), headers=account.headers())).json()
    r = await client.patch(
        f"/v1/stores/{store['id']}", json={"name": "x"}, headers={**account.headers(), "If-Match": "abc"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["header", "If-Match"]


async def test_unparseable_body_is_a_400_problem(client: AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/stores", content=b"\xff\xfe\x00", headers={**account.headers(), "content-type": "application/json"}
    )
    assert r.status_code in (400, 422)
    assert r.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("value", ["0.5", "1700000000", 1700000000, "-5.700778606548755e-69", " 1E5 ", "+.5"])
def test_times_must_be_rfc3339_not_epoch_numbers(value: object) -> None:
    from pydantic import TypeAdapter, ValidationError

    from acorn_api.core.time import UTCDateTime

    with pytest.raises(ValidationError, match="RFC 3339"):
        TypeAdapter(UTCDateTime).validate_python(value)


@pytest.mark.parametrize("value", ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00.5+01:00"])
def test_rfc3339_times_still_pass(value: str) -> None:
    from pydantic import TypeAdapter

    from acorn_api.core.time import UTCDateTime

    assert TypeAdapter(UTCDateTime).validate_python(value).tzinfo is not None


@pytest.mark.parametrize("value", ["10000000000000000", "-744354044629879401462.4", "1e16"])
def test_amounts_beyond_the_money_columns_are_refused(value: str) -> None:
    """NUMERIC(20, 4) holds 16 digits before the point; a larger filter overflowed its parameter (a 500)."""
    from pydantic import TypeAdapter, ValidationError

    from acorn_api.core.money import Amount

    with pytest.raises(ValidationError, match="10\\^16"):
        TypeAdapter(Amount).validate_python(value)
    assert TypeAdapter(Amount).validate_python("9999999999999999.9999") == Decimal("9999999999999999.9999")


async def test_huge_amounts_and_epoch_times_in_queries_and_bodies_are_422s(
    client: AsyncClient, account: Tenant
) -> None:
    """Found by the deep fuzz profile: each was a 500 (numeric overflow) or accepted (epoch seconds)."""
    r = await client.get(
        "/v1/refund-cases", params={"max_amount": "-744354044629879401462.4"}, headers=account.headers()
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "max_amount"], r.text
    r = await client.post(
        "/v1/case-rules",
        json={"name": "huge", "min_amount": "7685189702054804122", "needs_review": True, "entry_types": ["coop"]},
        headers=account.headers(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "min_amount"], r.text
    r = await client.get("/v1/events", params={"created_after": "-5.700778606548755e-69"}, headers=account.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "created_after"], r.text
