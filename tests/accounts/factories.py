"""Helpers to create credentials through the API and get tokens, as a client would."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
from joserfc import jwt

from acorn_api.accounts.keys import key_ring
from acorn_api.accounts.tokens import ACCOUNT_CLAIM
from acorn_api.settings import Settings
from tests.conftest import Tenant


def credential_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "ERP integration", "role": "purchasing", "issued_to": "erp.team@brand.example"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def create_client(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/v1/oauth-clients", json=credential_body(**overrides), headers=tenant.headers())
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def create_api_key(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/v1/api-keys", json=credential_body(**overrides), headers=tenant.headers())
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def fetch_token(client: httpx.AsyncClient, oauth_client: dict[str, Any], scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    r = await client.post(
        "/oauth/token", data=data, headers=basic(oauth_client["client_id"], oauth_client["client_secret"])
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forge_token(settings: Settings, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A token signed with the app's real key, with any header or claim changed (to test what is refused)."""
    ring = key_ring(settings)
    now = int(time.time())
    body = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "acc_nosuchclient1",
        "client_id": "acc_nosuchclient1",
        "scope": "stores:read",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        ACCOUNT_CLAIM: str(uuid.uuid4()),
    }
    body.update(claims)
    head = {k: v for k, v in {"alg": "RS256", "typ": "at+jwt", "kid": ring.kid, **(header or {})}.items() if v}
    claims_ = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(head, claims_, ring.signing_key, algorithms=["RS256"], default_type=None)
