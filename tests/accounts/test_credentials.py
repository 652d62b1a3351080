"""Credential management: create, list, revoke, roll, expiry, and what a credential may grant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.cache import forget_credentials
from acorn_api.accounts.models import ApiKey, OAuthClient
from acorn_api.accounts.scopes import ROLE_SCOPES, Role
from tests.accounts.conftest import AppClientFactory
from tests.accounts.factories import bearer, create_api_key, create_client, credential_body
from tests.conftest import AccountFactory, Tenant


@pytest.mark.parametrize("path", ["/v1/api-keys", "/v1/oauth-clients"])
async def test_unknown_scope_is_422_naming_the_field(client: httpx.AsyncClient, account: Tenant, path: str) -> None:
    r = await client.post(
        path, json=credential_body(role=None, scopes=["stores:read", "root"]), headers=account.headers()
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:2] == ["body", "scopes"]
    assert "root" in r.json()["errors"][0]["msg"]


@pytest.mark.parametrize("path", ["/v1/api-keys", "/v1/oauth-clients"])
async def test_role_and_scopes_together_is_422(client: httpx.AsyncClient, account: Tenant, path: str) -> None:
    r = await client.post(path, json=credential_body(scopes=["stores:read"]), headers=account.headers())
    assert r.status_code == 422


async def test_expiry_in_the_past_is_422(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/api-keys", json=credential_body(expires_at="2020-01-01T00:00:00Z"), headers=account.headers()
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "expires_at"]


async def test_created_key_is_shown_once_and_stored_as_hash(
    client: httpx.AsyncClient, account: Tenant, session: AsyncSession
) -> None:
    created = await create_api_key(client, account, role="viewer")
    assert created["key"].startswith(created["prefix"] + "_")
    row = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])))
    assert row is not None
    assert created["key"] not in (row.secret_hash, row.prefix)
    listed = (await client.get("/v1/api-keys", headers=account.headers())).json()["data"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine
    assert mine["prefix"] == created["prefix"]
    assert mine["scopes"] == sorted(ROLE_SCOPES[Role.viewer])


async def test_created_client_secret_is_stored_as_hash(
    client: httpx.AsyncClient, account: Tenant, session: AsyncSession
) -> None:
    created = await create_client(client, account, role=None, scopes=["stores:read"])
    row = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == created["client_id"]))
    assert row is not None
    assert row.secret_hash != created["client_secret"]
    listed = (await client.get("/v1/oauth-clients", headers=account.headers())).json()["data"]
    assert [c["scopes"] for c in listed if c["id"] == created["id"]] == [["stores:read"]]
    assert all("client_secret" not in c for c in listed)


async def test_new_key_works_with_its_scopes(client: httpx.AsyncClient, account: Tenant) -> None:
    created = await create_api_key(client, account, role=None, scopes=["stores:read"])
    assert (await client.get("/v1/stores", headers=bearer(created["key"]))).status_code == 200
    assert (await client.post("/v1/stores", json={}, headers=bearer(created["key"]))).status_code == 403


async def test_revoked_key_stops_working(client: httpx.AsyncClient, account: Tenant) -> None:
    created = await create_api_key(client, account, role="viewer")
    assert (await client.get("/v1/stores", headers=bearer(created["key"]))).status_code == 200
    r = await client.delete(f"/v1/api-keys/{created['id']}", headers=account.headers())
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    r = await client.get("/v1/stores", headers=bearer(created["key"]))
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


async def test_revoked_keys_are_hidden_unless_asked(client: httpx.AsyncClient, account: Tenant) -> None:
    created = await create_api_key(client, account, role="viewer")
    await client.delete(f"/v1/api-keys/{created['id']}", headers=account.headers())
    default = (await client.get("/v1/api-keys", headers=account.headers())).json()["data"]
    everything = (await client.get("/v1/api-keys?include_revoked=true", headers=account.headers())).json()["data"]
    assert created["id"] not in [k["id"] for k in default]
    assert created["id"] in [k["id"] for k in everything]


async def test_expired_key_is_refused(client: httpx.AsyncClient, account: Tenant, session: AsyncSession) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await create_api_key(client, account, role="viewer", expires_at=soon)
    await session.execute(
        update(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])).values(expires_at=datetime.now(UTC))
    )
    await session.commit()
    r = await client.get("/v1/stores", headers=bearer(created["key"]))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


async def test_rolled_key_old_secret_works_during_grace(client: httpx.AsyncClient, account: Tenant) -> None:
    created = await create_api_key(client, account, role="viewer")
    r = await client.post(f"/v1/api-keys/{created['id']}/roll", headers=account.headers())
    assert r.status_code == 200, r.text
    rolled = r.json()
    assert rolled["prefix"] == created["prefix"]
    assert rolled["key"] != created["key"]
    grace = datetime.fromisoformat(rolled["previous_valid_until"]) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < grace <= timedelta(hours=24)
    for secret in (created["key"], rolled["key"]):
        assert (await client.get("/v1/stores", headers=bearer(secret))).status_code == 200


async def test_rolled_key_old_secret_fails_after_grace(
    client: httpx.AsyncClient, account: Tenant, session: AsyncSession
) -> None:
    created = await create_api_key(client, account, role="viewer")
    rolled = (await client.post(f"/v1/api-keys/{created['id']}/roll", headers=account.headers())).json()
    assert (await client.get("/v1/stores", headers=bearer(created["key"]))).status_code == 200
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == uuid.UUID(created["id"]))
        .values(previous_valid_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    await session.commit()
    forget_credentials()  # what the cache's few seconds would do on their own
    r = await client.get("/v1/stores", headers=bearer(created["key"]))
    assert r.status_code == 401
    assert "grace" in r.json()["detail"]
    assert (await client.get("/v1/stores", headers=bearer(rolled["key"]))).status_code == 200


async def test_roll_with_zero_grace_ends_the_old_secret_at_once(client_with: AppClientFactory, account: Tenant) -> None:
    async with client_with(api_key_roll_grace_hours=0) as c:
        created = await create_api_key(c, account, role="viewer")
        await c.post(f"/v1/api-keys/{created['id']}/roll", headers=account.headers())
        assert (await c.get("/v1/stores", headers=bearer(created["key"]))).status_code == 401


async def test_revoked_key_cannot_be_rolled(client: httpx.AsyncClient, account: Tenant) -> None:
    created = await create_api_key(client, account, role="viewer")
    await client.delete(f"/v1/api-keys/{created['id']}", headers=account.headers())
    r = await client.post(f"/v1/api-keys/{created['id']}/roll", headers=account.headers())
    assert r.status_code == 409


async def _only_admin(make_account: AccountFactory) -> Tenant:
    return await make_account("Lonely", roles=())


@pytest.mark.parametrize("kind", ["api_key", "oauth_client"])
async def test_revoking_the_last_admin_credential_is_409(
    client: httpx.AsyncClient, make_account: AccountFactory, kind: str
) -> None:
    tenant = await _only_admin(make_account)
    me = (await client.get("/v1/api-keys", headers=tenant.headers())).json()["data"]
    assert len(me) == 1
    if kind == "api_key":
        r = await client.delete(f"/v1/api-keys/{me[0]['id']}", headers=tenant.headers())
    else:
        # The admin key hands over to an admin OAuth client, revokes itself, then the client tries the same.
        admin_client = await create_client(client, tenant, role="admin")
        assert (await client.delete(f"/v1/api-keys/{me[0]['id']}", headers=tenant.headers())).status_code == 200
        from tests.accounts.factories import fetch_token

        token = await fetch_token(client, admin_client)
        r = await client.delete(f"/v1/oauth-clients/{admin_client['id']}", headers=bearer(token))
    assert r.status_code == 409
    assert r.json()["type"].endswith("/last-admin-credential")


async def test_revoking_an_admin_key_when_another_exists_works(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    tenant = await _only_admin(make_account)
    second = await create_api_key(client, tenant, role="admin")
    me = [
        k
        for k in (await client.get("/v1/api-keys", headers=tenant.headers())).json()["data"]
        if k["id"] != second["id"]
    ]
    r = await client.delete(f"/v1/api-keys/{me[0]['id']}", headers=tenant.headers())
    assert r.status_code == 200


async def test_revoke_is_idempotent(client: httpx.AsyncClient, account: Tenant) -> None:
    created = await create_api_key(client, account, role="viewer")
    first = await client.delete(f"/v1/api-keys/{created['id']}", headers=account.headers())
    second = await client.delete(f"/v1/api-keys/{created['id']}", headers=account.headers())
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first.json()["revoked_at"]


async def test_a_credential_cannot_grant_more_than_its_creator(client: httpx.AsyncClient, account: Tenant) -> None:
    """Only admin may manage credentials today, so this is the rule's backstop: a narrower creator is refused."""
    from acorn_api.accounts.auth import Caller
    from acorn_api.accounts.schemas import CredentialCreate
    from acorn_api.accounts.service import _check_new_credential
    from acorn_api.core.errors import NotPermitted

    caller = Caller(account.id, uuid.uuid4(), "api_key", frozenset({"stores:read"}))
    with pytest.raises(NotPermitted):
        _check_new_credential(caller, CredentialCreate(name="x", scopes=["stores:write"]))
    _check_new_credential(caller, CredentialCreate(name="x", scopes=["stores:read"]))


@pytest.mark.parametrize("role", [r.value for r in Role if r != Role.admin])
async def test_only_admin_manages_credentials(client: httpx.AsyncClient, account: Tenant, role: str) -> None:
    r = await client.post(
        "/v1/api-keys", json=credential_body(role="admin"), headers=account.headers(account.keys[role])
    )
    assert r.status_code == 403


async def test_secrets_never_appear_in_audit_events(client: httpx.AsyncClient, account: Tenant) -> None:
    key = await create_api_key(client, account, role="viewer")
    rolled = (await client.post(f"/v1/api-keys/{key['id']}/roll", headers=account.headers())).json()
    oauth = await create_client(client, account, role="viewer")
    rotated = (await client.post(f"/v1/oauth-clients/{oauth['id']}/rotate-secret", headers=account.headers())).json()
    events: list[dict[str, Any]] = (await client.get("/v1/audit-events", headers=account.headers())).json()["data"]
    text = str(events)
    assert {"api_key.created", "api_key.rolled", "oauth_client.created", "oauth_client.secret_rotated"} <= {
        e["action"] for e in events
    }
    for secret in (key["key"], rolled["key"], oauth["client_secret"], rotated["client_secret"]):
        assert secret not in text
    assert "secret_hash" not in text
