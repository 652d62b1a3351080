"""Signing keys rotate: new tokens use the first key; tokens of any listed key verify; unlisted → 401."""

from __future__ import annotations

import httpx
from joserfc import jwt
from pydantic import SecretStr

from acorn_api.accounts.keys import build_key_ring, generate_private_key_pem
from tests.accounts.conftest import AppClientFactory
from tests.accounts.factories import bearer, create_client, fetch_token
from tests.conftest import Tenant

OLD = generate_private_key_pem()
NEW = generate_private_key_pem()


async def test_rotation_keeps_old_tokens_valid_while_listed(
    client: httpx.AsyncClient, client_with: AppClientFactory, account: Tenant
) -> None:
    async with client_with(jwt_private_keys_pem=[SecretStr(OLD)]) as before:
        c = await create_client(before, account, role="viewer")
        old_token = await fetch_token(before, c)
    async with client_with(jwt_private_keys_pem=[SecretStr(NEW), SecretStr(OLD)]) as during:
        assert (await during.get("/v1/stores", headers=bearer(old_token))).status_code == 200
        new_token = await fetch_token(during, c)
        assert jwt.decode(new_token, build_key_ring([NEW]).signing_key, algorithms=["RS256"]).header["kid"] == (
            build_key_ring([NEW]).kid
        )
    async with client_with(jwt_private_keys_pem=[SecretStr(NEW)]) as after:
        assert (await after.get("/v1/stores", headers=bearer(new_token))).status_code == 200
        r = await after.get("/v1/stores", headers=bearer(old_token))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_jwks_lists_every_key_newest_first(client_with: AppClientFactory) -> None:
    async with client_with(jwt_private_keys_pem=[SecretStr(NEW), SecretStr(OLD)]) as during:
        kids = [k["kid"] for k in (await during.get("/.well-known/jwks.json")).json()["keys"]]
    assert kids == [build_key_ring([NEW]).kid, build_key_ring([OLD]).kid]


async def test_keys_file_is_created_once_and_reused(tmp_path: object) -> None:
    from pathlib import Path

    from acorn_api.accounts.keys import read_keys_file

    path = Path(str(tmp_path)) / "keys.pem"
    first = read_keys_file(path)
    assert read_keys_file(path) == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
