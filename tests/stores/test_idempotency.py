"""Idempotency-Key on POST /v1/stores: retries are safe, reuse with another body is refused."""

from __future__ import annotations

import asyncio

import pytest
from httpx import AsyncClient

from tests.conftest import AccountFactory, Tenant
from tests.stores.factories import store_body


async def test_same_key_and_body_returns_the_first_response(client: AsyncClient, account: Tenant) -> None:
    headers = {**account.headers(), "Idempotency-Key": "create-nyc-1"}
    first = await client.post("/v1/stores", json=store_body(), headers=headers)
    second = await client.post("/v1/stores", json=store_body(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotency-replayed"] == "true"
    listed = (await client.get("/v1/stores", headers=account.headers())).json()["data"]
    assert len(listed) == 1


async def test_same_key_with_another_body_is_refused(client: AsyncClient, account: Tenant) -> None:
    headers = {**account.headers(), "Idempotency-Key": "k1"}
    await client.post("/v1/stores", json=store_body(), headers=headers)
    r = await client.post("/v1/stores", json=store_body(code="OTHER"), headers=headers)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/idempotency-key-reused")


async def test_keys_are_per_account(client: AsyncClient, account: Tenant, other_account: Tenant) -> None:
    for tenant in (account, other_account):
        r = await client.post("/v1/stores", json=store_body(), headers={**tenant.headers(), "Idempotency-Key": "k"})
        assert r.status_code == 201
        assert "idempotency-replayed" not in r.headers


async def test_a_failed_request_is_not_stored(client: AsyncClient, account: Tenant) -> None:
    headers = {**account.headers(), "Idempotency-Key": "k2"}
    await client.post("/v1/stores", json=store_body(), headers=account.headers())
    failed = await client.post("/v1/stores", json=store_body(), headers=headers)
    assert failed.status_code == 409
    ok = await client.post("/v1/stores", json=store_body(code="NEW"), headers=headers)
    assert ok.status_code == 201


@pytest.mark.committing
async def test_concurrent_requests_with_one_key_create_one_store(
    committing_client: AsyncClient, make_committed_account: AccountFactory
) -> None:
    tenant = await make_committed_account()
    headers = {**tenant.headers(), "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(committing_client.post("/v1/stores", json=store_body(), headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    listed = (await committing_client.get("/v1/stores", headers=tenant.headers())).json()["data"]
    assert len(listed) == 1


async def test_replay_keeps_integers_beyond_64_bits(client: AsyncClient, account: Tenant) -> None:
    headers = {**account.headers(), "Idempotency-Key": "big-int"}
    body = store_body(metadata={"erp_ref": 2924903066679203518085532221440})
    first = await client.post("/v1/stores", json=body, headers=headers)
    second = await client.post("/v1/stores", json=body, headers=headers)
    assert first.status_code == second.status_code == 201, second.text
    assert second.json()["metadata"] == {"erp_ref": 2924903066679203518085532221440}
