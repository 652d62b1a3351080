"""/v1/connections: CRUD, write-only encrypted secrets, rotation warnings, and the live /test call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.scopes import Role
from acorn_api.amazon import crypto
from acorn_api.amazon.jobs import reencrypt_connection_secrets
from acorn_api.amazon.models import VendorConnection
from acorn_api.settings import Settings
from tests.amazon.test_sync_support import Served, connection_body, served, sim_config
from tests.conftest import AccountFactory, Tenant

SECRETS = ("sim-client", "sim-secret", "Atzr|sim-refresh")


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Served]:
    async with served(sim_config(purchase_orders=20)) as s:
        yield s


async def create(client: AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    r = await client.post(
        "/v1/connections", json=connection_body("http://127.0.0.1:9", **overrides), headers=tenant.headers()
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_created_connection_never_shows_its_secrets(client: AsyncClient, account: Tenant) -> None:
    created = await create(client, account)
    fetched = (await client.get(f"/v1/connections/{created['id']}", headers=account.headers())).text
    listed = (await client.get("/v1/connections", headers=account.headers())).text
    for secret in SECRETS:
        assert secret not in str(created) and secret not in fetched and secret not in listed
    assert not {"client_id", "client_secret", "refresh_token"} & set(created)
    assert created["region"] == "NA" and created["vendor_codes"] == ["ACME1", "ACME2"]


async def test_secrets_are_encrypted_at_rest(
    client: AsyncClient, account: Tenant, session: AsyncSession, settings: Settings
) -> None:
    created = await create(client, account)
    row = (
        await session.execute(
            text(
                "SELECT lwa_client_id_encrypted, lwa_client_secret_encrypted, lwa_refresh_token_encrypted "
                "FROM vendor_connections WHERE id = :id"
            ),
            {"id": created["id"]},
        )
    ).one()
    for stored, plain in zip(row, SECRETS, strict=True):
        assert plain.encode() not in bytes(stored)
        assert crypto.decrypt(settings, bytes(stored)) == plain


async def test_credentials_due_within_14_days_raise_a_warning(client: AsyncClient, account: Tenant) -> None:
    soon = await create(client, account, credentials_rotate_by=(date.today() + timedelta(days=10)).isoformat())
    later = await create(client, account, credentials_rotate_by=(date.today() + timedelta(days=60)).isoformat())
    assert len(soon["warnings"]) == 1 and soon["warnings"][0].startswith("credentials_rotate_soon")
    assert later["warnings"] == []


async def test_new_credentials_replace_all_three_secrets_together(client: AsyncClient, account: Tenant) -> None:
    created = await create(client, account)
    r = await client.patch(f"/v1/connections/{created['id']}", json={"client_secret": "x"}, headers=account.headers())
    assert r.status_code == 422
    r = await client.patch(
        f"/v1/connections/{created['id']}",
        json={"client_id": "a", "client_secret": "b", "refresh_token": "c", "version": created["version"]},
        headers=account.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["credentials_updated_at"] > created["credentials_updated_at"]


async def test_a_stale_version_is_refused(client: AsyncClient, account: Tenant) -> None:
    created = await create(client, account)
    ok = await client.patch(
        f"/v1/connections/{created['id']}", json={"name": "Renamed", "version": 1}, headers=account.headers()
    )
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = await client.patch(
        f"/v1/connections/{created['id']}", json={"name": "Again", "version": 1}, headers=account.headers()
    )
    assert stale.status_code == 409


async def test_a_schedule_must_be_an_interval_or_a_cron_expression(client: AsyncClient, account: Tenant) -> None:
    good = await create(client, account, sync_schedule="*/30 * * * *")
    assert good["next_sync_at"] is not None
    r = await client.post(
        "/v1/connections",
        json=connection_body("http://127.0.0.1:9", sync_schedule="every hour"),
        headers=account.headers(),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][-1] == "sync_schedule"


def _errors(r: Any) -> dict[tuple[str, ...], str]:
    return {tuple(e["loc"]): e["msg"] for e in r.json()["errors"]}


async def test_a_marketplace_of_another_region_is_refused(
    client: AsyncClient, account: Tenant, session: AsyncSession
) -> None:
    """A connection calls one region's SP-API host; DE (EU) cannot be reached through NA's."""
    r = await client.post(
        "/v1/connections",
        json=connection_body("http://127.0.0.1:9", region="NA", marketplaces=["US", "DE", "JP"]),
        headers=account.headers(),
    )
    assert r.status_code == 422, r.text
    [(loc, msg)] = _errors(r).items()
    assert loc == ("body", "marketplaces")
    assert "marketplace DE is in region EU, not NA" in msg and "marketplace JP is in region FE, not NA" in msg
    assert "marketplace US" not in msg
    assert await session.scalar(select(VendorConnection.id).where(VendorConnection.account_id == account.id)) is None
    eu = await create(client, account, region="EU", marketplaces=["DE", "UK"])
    assert eu["marketplaces"] == ["DE", "UK"]


async def test_a_change_of_region_or_marketplaces_must_keep_them_together(client: AsyncClient, account: Tenant) -> None:
    created = await create(client, account)  # NA, US
    url = f"/v1/connections/{created['id']}"
    secrets = {"client_id": "a", "client_secret": "b", "refresh_token": "c"}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"marketplaces": ["US", "DE"]}, "marketplaces", "marketplace DE is in region EU, not NA"),
        ({"region": "EU", **secrets}, "region", "marketplace US is in region NA, not EU"),
        ({"region": "EU", "marketplaces": ["US"], **secrets}, "marketplaces", "marketplace US is in region NA"),
    ]
    for change, field, reason in cases:
        r = await client.patch(url, json=change, headers=account.headers())
        assert r.status_code == 422, (change, r.text)
        errors = _errors(r)
        assert set(errors) == {("body", field)}, (change, errors)
        assert reason in errors[("body", field)], (change, errors)
    unchanged = (await client.get(url, headers=account.headers())).json()
    assert (unchanged["region"], unchanged["marketplaces"], unchanged["version"]) == ("NA", ["US"], 1)
    moved = await client.patch(url, json={"region": "EU", "marketplaces": ["DE"], **secrets}, headers=account.headers())
    assert moved.status_code == 200, moved.text
    assert (moved.json()["region"], moved.json()["marketplaces"]) == ("EU", ["DE"])
    more = await client.patch(url, json={"marketplaces": ["DE", "FR"]}, headers=account.headers())
    assert more.status_code == 200 and more.json()["marketplaces"] == ["DE", "FR"]


async def test_names_are_unique_per_account(client: AsyncClient, account: Tenant) -> None:
    await create(client, account, name="Main")
    r = await client.post(
        "/v1/connections", json=connection_body("http://127.0.0.1:9", name="Main"), headers=account.headers()
    )
    assert r.status_code == 409


async def test_a_deleted_connection_is_gone_and_its_secrets_erased(
    client: AsyncClient, account: Tenant, session: AsyncSession
) -> None:
    created = await create(client, account)
    r = await client.delete(f"/v1/connections/{created['id']}", headers=account.headers())
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (await client.get(f"/v1/connections/{created['id']}", headers=account.headers())).status_code == 404
    stored = await session.scalar(select(VendorConnection).where(VendorConnection.id == uuid.UUID(created["id"])))
    assert stored is not None and stored.lwa_refresh_token_encrypted == b""


async def test_another_accounts_connection_is_not_found(
    client: AsyncClient, account: Tenant, other_account: Tenant
) -> None:
    created = await create(client, account)
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method,
            f"/v1/connections/{created['id']}",
            headers=other_account.headers(),
            json={"name": "x"} if method == "PATCH" else None,
        )
        assert r.status_code == 404, method
    r = await client.post(
        f"/v1/connections/{created['id']}/syncs", json={"kind": "orders"}, headers=other_account.headers()
    )
    assert r.status_code == 404


async def test_a_viewer_can_read_but_not_add_connections(client: AsyncClient, make_account: AccountFactory) -> None:
    tenant = await make_account(roles=(Role.viewer,))
    viewer = tenant.headers(tenant.keys["viewer"])
    assert (await client.get("/v1/connections", headers=viewer)).status_code == 200
    r = await client.post("/v1/connections", json=connection_body("http://127.0.0.1:9"), headers=viewer)
    assert r.status_code == 403


async def test_the_connection_test_exchanges_a_token_and_calls_amazon(
    client: AsyncClient, account: Tenant, sim: Served
) -> None:
    r = await client.post("/v1/connections", json=connection_body(sim.url), headers=account.headers())
    result = await client.post(f"/v1/connections/{r.json()['id']}/test", headers=account.headers())
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["ok"] is True and body["request_id"] and body["error_code"] is None
    assert body["latency_ms"] >= 0


async def test_the_connection_test_reports_bad_credentials(client: AsyncClient, account: Tenant, sim: Served) -> None:
    r = await client.post(
        "/v1/connections", json=connection_body(sim.url, client_secret="wrong"), headers=account.headers()
    )
    body = (await client.post(f"/v1/connections/{r.json()['id']}/test", headers=account.headers())).json()
    assert body["ok"] is False
    assert body["error_code"] == "invalid_client"
    assert body["error_message"]


async def test_reencryption_moves_secrets_to_the_new_first_key(
    client: AsyncClient, account: Tenant, session: AsyncSession, sessionmaker: Any, settings: Settings
) -> None:
    created = await create(client, account)
    new_key = Fernet.generate_key().decode()
    rotated = settings.model_copy(update={"encryption_keys": [SecretStr(new_key), *settings.encryption_keys]})
    assert await reencrypt_connection_secrets({"settings": rotated, "sessionmaker": sessionmaker, "redis": None}) >= 1
    stored = await session.scalar(
        select(VendorConnection.lwa_refresh_token_encrypted).where(VendorConnection.id == uuid.UUID(created["id"]))
    )
    assert stored is not None
    only_new = settings.model_copy(update={"encryption_keys": [SecretStr(new_key)]})
    assert crypto.decrypt(only_new, stored) == "Atzr|sim-refresh"


@pytest.mark.committing
async def test_reencrypt_secrets_command_moves_secrets_to_the_first_key(
    settings: Settings,
    committing_client: AsyncClient,
    make_committed_account: AccountFactory,
    committing_sessionmaker: Any,
) -> None:
    import asyncio
    import json
    import os
    import subprocess
    import sys

    tenant = await make_committed_account()
    r = await committing_client.post(
        "/v1/connections", json=connection_body("http://127.0.0.1:9"), headers=tenant.headers()
    )
    assert r.status_code == 201, r.text
    new_key = Fernet.generate_key().decode()
    env = {
        **os.environ,
        "ACORN_DATABASE_URL": (settings.database_url or "").replace("+asyncpg", ""),
        "ACORN_ENCRYPTION_KEYS": json.dumps([new_key, *(k.get_secret_value() for k in settings.encryption_keys)]),
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "acorn_api.cli", "reencrypt-secrets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "re-encrypted the secrets of" in result.stdout
    async with committing_sessionmaker() as s:
        stored = await s.scalar(select(VendorConnection).where(VendorConnection.id == uuid.UUID(r.json()["id"])))
    assert stored is not None
    assert (
        Fernet(new_key.encode()).decrypt(stored.lwa_refresh_token_encrypted).decode()
        == (connection_body("http://127.0.0.1:9")["refresh_token"])
    )
