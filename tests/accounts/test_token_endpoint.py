"""POST /oauth/token: the client credentials grant and its RFC 6749 §5.2 errors."""

from __future__ import annotations

from typing import Any

import httpx
from joserfc import jwt

from acorn_api.accounts.keys import key_ring
from acorn_api.settings import Settings
from tests.accounts.factories import basic, bearer, create_client
from tests.conftest import Tenant

GRANT = {"grant_type": "client_credentials"}


async def test_basic_auth_gets_a_bearer_token_with_no_store(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account, role="viewer")
    r = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert "stores:read" in body["scope"].split()
    assert r.headers["cache-control"] == "no-store"


async def test_form_body_credentials_work(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account, role="viewer")
    r = await client.post(
        "/oauth/token", data={**GRANT, "client_id": c["client_id"], "client_secret": c["client_secret"]}
    )
    assert r.status_code == 200, r.text
    me = await client.get("/v1/stores", headers=bearer(r.json()["access_token"]))
    assert me.status_code == 200


async def test_token_is_an_rfc9068_access_token(client: httpx.AsyncClient, account: Tenant, settings: Settings) -> None:
    c = await create_client(client, account, role="viewer")
    r = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"]))
    token = jwt.decode(r.json()["access_token"], key_ring(settings).key_set, algorithms=["RS256"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["kid"] == key_ring(settings).kid
    claims = token.claims
    assert claims["iss"] == settings.jwt_issuer
    assert claims["aud"] == settings.jwt_audience
    assert claims["sub"] == claims["client_id"] == c["client_id"]
    assert claims["account_id"] == str(account.id)
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    assert claims["jti"]


async def test_bad_secret_is_invalid_client_with_basic_challenge(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account)
    r = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"] + "x"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    assert r.headers["cache-control"] == "no-store"


async def test_bad_secret_in_body_is_invalid_client_without_challenge(
    client: httpx.AsyncClient, account: Tenant
) -> None:
    c = await create_client(client, account)
    r = await client.post("/oauth/token", data={**GRANT, "client_id": c["client_id"], "client_secret": "nope"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert "www-authenticate" not in r.headers


async def test_unknown_client_is_invalid_client(client: httpx.AsyncClient) -> None:
    r = await client.post("/oauth/token", data=GRANT, headers=basic("acc_nosuchclient", "acc_nosuchclient_x"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


async def test_malformed_basic_header_is_invalid_client(client: httpx.AsyncClient) -> None:
    r = await client.post("/oauth/token", data=GRANT, headers={"Authorization": "Basic !!!not-base64"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


async def test_unsupported_grant_type(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account)
    r = await client.post(
        "/oauth/token", data={"grant_type": "password"}, headers=basic(c["client_id"], c["client_secret"])
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


async def test_missing_grant_type_is_invalid_request(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account)
    r = await client.post("/oauth/token", data={}, headers=basic(c["client_id"], c["client_secret"]))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


async def test_two_authentication_methods_is_invalid_request(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account)
    r = await client.post(
        "/oauth/token",
        data={**GRANT, "client_id": c["client_id"], "client_secret": c["client_secret"]},
        headers=basic(c["client_id"], c["client_secret"]),
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


async def test_scope_subset_is_granted_exactly(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account, role="purchasing")
    r = await client.post(
        "/oauth/token", data={**GRANT, "scope": "stores:read"}, headers=basic(c["client_id"], c["client_secret"])
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "stores:read"
    token = r.json()["access_token"]
    write = await client.post("/v1/stores", json={}, headers=bearer(token))
    assert write.status_code == 403


async def test_scope_beyond_the_client_is_invalid_scope(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account, role="viewer")
    r = await client.post(
        "/oauth/token",
        data={**GRANT, "scope": "stores:read stores:write"},
        headers=basic(c["client_id"], c["client_secret"]),
    )
    assert r.status_code == 400
    body: dict[str, Any] = r.json()
    assert body["error"] == "invalid_scope"
    assert "stores:write" in body["error_description"]


async def test_unknown_scope_is_invalid_scope(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account, role="admin")
    r = await client.post(
        "/oauth/token", data={**GRANT, "scope": "root"}, headers=basic(c["client_id"], c["client_secret"])
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


async def test_revoked_client_gets_no_token(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account)
    r = await client.delete(f"/v1/oauth-clients/{c['id']}", headers=account.headers())
    assert r.status_code == 200, r.text
    r = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"]))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


async def test_revoked_client_token_stops_working(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account, role="viewer")
    r = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"]))
    token = r.json()["access_token"]
    assert (await client.get("/v1/stores", headers=bearer(token))).status_code == 200
    await client.delete(f"/v1/oauth-clients/{c['id']}", headers=account.headers())
    r = await client.get("/v1/stores", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "revoked" in r.json()["detail"]


async def test_rotated_secret_replaces_the_old_one(client: httpx.AsyncClient, account: Tenant) -> None:
    c = await create_client(client, account)
    r = await client.post(f"/v1/oauth-clients/{c['id']}/rotate-secret", headers=account.headers())
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["client_id"] == c["client_id"]
    old = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"]))
    new = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], rotated["client_secret"]))
    assert (old.status_code, new.status_code) == (401, 200)


async def test_client_of_a_suspended_account_is_invalid_grant(
    client: httpx.AsyncClient, account: Tenant, session: Any
) -> None:
    from sqlalchemy import update

    from acorn_api.accounts.models import Account

    c = await create_client(client, account)
    await session.execute(update(Account).where(Account.id == account.id).values(status="suspended"))
    await session.commit()
    r = await client.post("/oauth/token", data=GRANT, headers=basic(c["client_id"], c["client_secret"]))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


async def test_jwks_lists_the_signing_key(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert [k["kid"] for k in keys] == [key_ring(settings).kid]
    assert keys[0]["kty"] == "RSA"
    assert keys[0]["alg"] == "RS256"
    assert "d" not in keys[0]  # never the private part
