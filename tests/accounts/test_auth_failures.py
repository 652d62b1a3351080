"""Failed API-key authentication is limited before the database is asked, and `last_used_at` holds no lock.

Issue 12: a well-formed bogus key cost a database round trip every time, unauthenticated traffic was not limited,
and recording `last_used_at` locked the key's row for the whole request (a concurrent revoke waited for it).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from acorn_api.accounts.cache import forget_credentials
from acorn_api.accounts.models import ApiKey
from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.idempotency import Idempotency, IdempotencyKeyHeader, idempotency
from tests.accounts.conftest import AppClientFactory
from tests.accounts.factories import bearer, create_api_key
from tests.conftest import AccountFactory, Tenant


@contextmanager
def key_lookups(connection: AsyncConnection) -> Iterator[list[str]]:
    """The statements that look API keys up, run on the test's connection while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(connection.sync_connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", record)


def bogus_key(prefix: str | None = None) -> str:
    return f"acn_{prefix or secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def fresh_limits() -> dict[str, Any]:
    """Buckets of their own (a unique key prefix), so other tests' failures do not count here."""
    return {"redis_key_prefix": f"authfail-{secrets.token_hex(4)}"}


async def test_a_rejected_key_costs_no_query_the_second_time(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    key = bogus_key()
    with key_lookups(connection) as lookups:
        first = await client.get("/v1/stores", headers=bearer(key))
        second = await client.get("/v1/stores", headers=bearer(key))
    assert (first.status_code, second.status_code) == (401, 401)
    assert len(lookups) == 1


async def test_a_wrong_secret_for_a_real_prefix_is_remembered_too(
    client: httpx.AsyncClient, account: Tenant, connection: AsyncConnection
) -> None:
    real = await create_api_key(client, account, role="viewer")
    prefix = real["key"].split("_")[1]
    wrong = bogus_key(prefix)
    with key_lookups(connection) as lookups:
        statuses = [(await client.get("/v1/stores", headers=bearer(wrong))).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    assert len(lookups) == 1
    assert (await client.get("/v1/stores", headers=bearer(real["key"]))).status_code == 200


async def test_failures_are_limited_per_source_address_before_the_database(
    client_with: AppClientFactory, account: Tenant, connection: AsyncConnection
) -> None:
    async with client_with(auth_failures_per_minute_per_address=3, **fresh_limits()) as c:
        with key_lookups(connection) as lookups:
            responses = [await c.get("/v1/stores", headers=bearer(bogus_key())) for _ in range(5)]
        forget_credentials()  # a cold cache: the next lookup of a real key would ask the database
        real = await c.get("/v1/stores", headers=account.headers())
    assert [r.status_code for r in responses] == [401, 401, 401, 429, 429]
    assert len(lookups) == 3  # the refused ones never reached the database
    assert int(responses[-1].headers["retry-after"]) >= 1
    assert responses[-1].headers["content-type"] == "application/problem+json"
    assert real.status_code == 429  # the address is limited until its bucket refills, whatever it sends


async def test_failures_are_limited_per_key_prefix(
    client_with: AppClientFactory, account: Tenant, connection: AsyncConnection
) -> None:
    async with client_with(
        auth_failures_per_minute_per_address=100, auth_failures_per_minute_per_key_prefix=2, **fresh_limits()
    ) as c:
        real = await create_api_key(c, account, role="viewer")
        prefix = real["key"].split("_")[1]
        assert (await c.get("/v1/stores", headers=bearer(real["key"]))).status_code == 200  # now cached
        guesses = [(await c.get("/v1/stores", headers=bearer(bogus_key(prefix)))).status_code for _ in range(3)]
        other_prefix = await c.get("/v1/stores", headers=bearer(bogus_key()))
        still_cached = await c.get("/v1/stores", headers=bearer(real["key"]))
    assert guesses == [401, 401, 429]
    assert other_prefix.status_code == 401  # another key's prefix has its own bucket
    assert still_cached.status_code == 200  # a holder whose key is cached is not locked out by guesses


async def test_valid_keys_are_not_charged(
    client_with: AppClientFactory, account: Tenant, connection: AsyncConnection
) -> None:
    async with client_with(auth_failures_per_minute_per_address=2, **fresh_limits()) as c:
        statuses = []
        for _ in range(4):
            forget_credentials()  # every request looks the key up
            statuses.append((await c.get("/v1/stores", headers=account.headers())).status_code)
    assert statuses == [200, 200, 200, 200]


# --- last_used_at: no row lock held for the request --------------------------------------------------------


@pytest.mark.committing
async def test_a_revoke_in_progress_does_not_block_a_request_using_the_key(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    engine: AsyncEngine,
) -> None:
    tenant = await make_committed_account("Touch Vendor")
    key = tenant.keys["viewer"]
    forget_credentials()
    async with engine.connect() as revoker:
        # Another transaction (a revoke) holds the key's row lock and has not committed yet.
        await revoker.execute(
            text("SELECT id FROM api_keys WHERE prefix = :p FOR UPDATE"), {"p": "_".join(key.split("_")[:2])}
        )
        r = await asyncio.wait_for(committing_client.get("/v1/stores", headers=bearer(key)), 5)
        assert r.status_code == 200
        await revoker.rollback()


@pytest.mark.committing
async def test_a_write_request_holds_no_lock_on_its_key(
    committing_app: FastAPI,
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    engine: AsyncEngine,
) -> None:
    """Midway through a write request (after authentication, inside its transaction) the key's row is free."""
    tenant = await make_committed_account("Touch Vendor 2")
    prefix = "_".join(tenant.admin_key.split("_")[:2])
    probes: list[str] = []

    async def probing_idempotency(
        request: Request, session: Session, settings: AppSettings, key: IdempotencyKeyHeader = None
    ) -> Idempotency:
        async with engine.connect() as other:
            try:
                await other.execute(text("SELECT 1 FROM api_keys WHERE prefix = :p FOR UPDATE NOWAIT"), {"p": prefix})
                probes.append("free")
            except DBAPIError:
                probes.append("locked")
            await other.rollback()
        return await idempotency(request, session, settings, key)

    committing_app.dependency_overrides[idempotency] = probing_idempotency
    forget_credentials()  # the request looks the key up and records its use
    r = await committing_client.post(
        "/v1/stores",
        json={
            "code": f"T-{secrets.token_hex(3)}",
            "name": "Touch DC",
            "region": "NA",
            "marketplace": "US",
            "country": "US",
            "currency": "USD",
            "timezone": "America/New_York",
        },
        headers=tenant.headers(),
    )
    assert r.status_code == 201, r.text
    assert probes == ["free"]
    async with engine.connect() as c:
        used = await c.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == prefix))
    assert used is not None


@pytest.mark.committing
async def test_last_used_is_written_at_most_once_a_minute(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_committed_account("Touch Vendor 3")
    prefix = "_".join(tenant.keys["viewer"].split("_")[:2])
    seen = []
    for _ in range(3):
        forget_credentials()
        assert (await committing_client.get("/v1/stores", headers=bearer(tenant.keys["viewer"]))).status_code == 200
        async with committing_sessionmaker() as s:
            seen.append(await s.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)))
    assert seen[0] is not None
    assert seen == [seen[0]] * 3
