"""A client created with the API gets a token with a standard OAuth2 client (authlib) and calls the API."""

from __future__ import annotations

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import FastAPI

from tests.accounts.factories import create_client
from tests.conftest import Tenant


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_client_credentials_flow(
    app: FastAPI, client: httpx.AsyncClient, account: Tenant, auth_method: str
) -> None:
    created = await create_client(client, account, role="purchasing")
    async with AsyncOAuth2Client(
        client_id=created["client_id"],
        client_secret=created["client_secret"],
        scope="stores:read stores:write",
        token_endpoint_auth_method=auth_method,
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
    ) as oauth:
        token = await oauth.fetch_token("http://test/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert sorted(token["scope"].split()) == ["stores:read", "stores:write"]
        r = await oauth.post(
            "/v1/stores",
            json={
                "code": "OAUTH-1",
                "name": "Made with a token",
                "region": "NA",
                "marketplace": "US",
                "country": "US",
                "currency": "USD",
                "timezone": "America/New_York",
            },
        )
        assert r.status_code == 201, r.text
        listed = await oauth.get("/v1/stores")
    assert [s["code"] for s in listed.json()["data"]] == ["OAUTH-1"]
