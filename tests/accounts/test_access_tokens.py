"""Every way an access token can be wrong is a 401 with `WWW-Authenticate: Bearer error="invalid_token"`."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from acorn_api.accounts.keys import generate_private_key_pem
from acorn_api.settings import Settings
from tests.accounts.factories import bearer, create_client, fetch_token, forge_token
from tests.conftest import Tenant


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def _valid_claims(client: httpx.AsyncClient, account: Tenant) -> dict[str, str]:
    c = await create_client(client, account, role="viewer")
    return {"sub": c["client_id"], "client_id": c["client_id"], "account_id": str(account.id)}


async def _assert_invalid_token(client: httpx.AsyncClient, token: str) -> None:
    r = await client.get("/v1/stores", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_forged_token_with_valid_claims_is_accepted(
    client: httpx.AsyncClient, account: Tenant, settings: Settings
) -> None:
    # The control for the tests below: the forging helper makes acceptable tokens unless told otherwise.
    token = forge_token(settings, **await _valid_claims(client, account))
    assert (await client.get("/v1/stores", headers=bearer(token))).status_code == 200


async def test_expired_token(client: httpx.AsyncClient, account: Tenant, settings: Settings) -> None:
    past = int(time.time()) - 3600
    claims = await _valid_claims(client, account)
    await _assert_invalid_token(client, forge_token(settings, iat=past - 900, nbf=past - 900, exp=past, **claims))


async def test_not_yet_valid_token(client: httpx.AsyncClient, account: Tenant, settings: Settings) -> None:
    future = int(time.time()) + 3600
    claims = await _valid_claims(client, account)
    await _assert_invalid_token(client, forge_token(settings, iat=future, nbf=future, exp=future + 900, **claims))


@pytest.mark.parametrize("claim", ["iss", "aud"])
async def test_wrong_issuer_or_audience(
    client: httpx.AsyncClient, account: Tenant, settings: Settings, claim: str
) -> None:
    claims = await _valid_claims(client, account)
    await _assert_invalid_token(client, forge_token(settings, **{**claims, claim: "https://elsewhere.example"}))


@pytest.mark.parametrize("claim", ["exp", "jti", "sub", "account_id"])
async def test_missing_claim(client: httpx.AsyncClient, account: Tenant, settings: Settings, claim: str) -> None:
    claims = {**await _valid_claims(client, account), claim: None}
    await _assert_invalid_token(client, forge_token(settings, **claims))


@pytest.mark.parametrize("typ", ["JWT", "id+jwt", None])
async def test_wrong_typ(client: httpx.AsyncClient, account: Tenant, settings: Settings, typ: str | None) -> None:
    claims = await _valid_claims(client, account)
    token = forge_token(settings, header={"typ": typ}, **claims)
    await _assert_invalid_token(client, token)


async def test_unknown_kid(client: httpx.AsyncClient, account: Tenant, settings: Settings) -> None:
    claims = await _valid_claims(client, account)
    await _assert_invalid_token(client, forge_token(settings, header={"kid": "not-a-key-we-have"}, **claims))


async def test_token_signed_by_a_stranger_key_with_our_kid(
    client: httpx.AsyncClient, account: Tenant, settings: Settings
) -> None:
    from joserfc import jwt

    from acorn_api.accounts.keys import key_ring

    token = forge_token(settings, **await _valid_claims(client, account))
    payload = token.split(".")[1]
    stranger = RSAKey.import_key(generate_private_key_pem())
    resigned = jwt.encode(
        {"alg": "RS256", "typ": "at+jwt", "kid": key_ring(settings).kid},
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        stranger,
        algorithms=["RS256"],
    )
    await _assert_invalid_token(client, resigned)


async def test_tampered_payload(client: httpx.AsyncClient, account: Tenant, settings: Settings) -> None:
    c = await create_client(client, account, role="viewer")
    token = await fetch_token(client, c)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "admin"
    await _assert_invalid_token(client, f"{header}.{_b64(claims)}.{signature}")


async def test_alg_none(client: httpx.AsyncClient, account: Tenant, settings: Settings) -> None:
    c = await create_client(client, account, role="viewer")
    token = await fetch_token(client, c)
    _, payload, _ = token.split(".")
    header = _b64({"alg": "none", "typ": "at+jwt", "kid": "x"})
    await _assert_invalid_token(client, f"{header}.{payload}.")


async def test_hs256_with_the_public_key_as_secret(
    client: httpx.AsyncClient, account: Tenant, settings: Settings
) -> None:
    """The classic algorithm-confusion attack: sign with HMAC using the published public key."""
    import hashlib
    import hmac

    jwks = (await client.get("/.well-known/jwks.json")).json()
    c = await create_client(client, account, role="viewer")
    _, payload, _ = (await fetch_token(client, c)).split(".")
    header = _b64({"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]})
    mac = hmac.new(json.dumps(jwks["keys"][0]).encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    await _assert_invalid_token(client, f"{header}.{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}")


@pytest.mark.parametrize("garbage", ["a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 9000 + ".a.b"])
async def test_garbage_tokens(client: httpx.AsyncClient, garbage: str) -> None:
    await _assert_invalid_token(client, garbage)


async def test_token_for_another_account_than_its_client(
    client: httpx.AsyncClient, account: Tenant, other_account: Tenant, settings: Settings
) -> None:
    claims = {**await _valid_claims(client, account), "account_id": str(other_account.id)}
    await _assert_invalid_token(client, forge_token(settings, **claims))


async def test_token_scopes_are_capped_by_the_client(
    client: httpx.AsyncClient, account: Tenant, settings: Settings
) -> None:
    """Even a correctly signed token cannot carry more than its client holds."""
    claims = await _valid_claims(client, account)  # a viewer client
    token = forge_token(settings, scope="stores:read stores:write", **claims)
    r = await client.post("/v1/stores", json={}, headers=bearer(token))
    assert r.status_code == 403


@settings_(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n\x00"), max_size=60),
        min_size=3,
        max_size=3,
    )
)
async def test_any_three_part_bearer_is_a_401_never_a_500(client: httpx.AsyncClient, parts: list[str]) -> None:
    r = await client.get("/v1/stores", headers={"Authorization": "Bearer " + ".".join(p.strip() or "x" for p in parts)})
    assert r.status_code == 401
