"""The domains in this branch emit their events: quotes (submitted, approved, rejected) and sync runs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import sync
from acorn_api.settings import Settings
from tests.amazon.test_sync_support import Served, connection_body, range_body, served, sim_config, sync_context
from tests.conftest import Tenant
from tests.quotes.helpers import Quotes


async def events_of(client: httpx.AsyncClient, tenant: Tenant, event_type: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/events", params={"type": event_type}, headers=tenant.headers())
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


async def test_quote_decisions_are_events_with_the_quote_as_the_api_returns_it(
    client: httpx.AsyncClient, account: Tenant
) -> None:
    q = Quotes(client, account)
    item = await q.item()
    approved = await q.approved(item, region="NA")
    pending = await q.submitted(item, region="NA", cost_price="11.00")
    r = await q.act(pending, "reject", role="finance", reason="too dear")
    assert r.status_code == 200, r.text

    submitted = await events_of(client, account, "quote.submitted")
    assert {e["data"]["id"] for e in submitted} == {approved["id"], pending["id"]}
    [approval] = await events_of(client, account, "quote.approved")
    assert approval["data"]["id"] == approved["id"] and approval["data"]["status"] == "approved"
    assert approval["data"]["cost_price"] == approved["cost_price"]
    [rejection] = await events_of(client, account, "quote.rejected")
    assert rejection["data"]["decision_reason"] == "too dear"


@pytest.fixture
async def sim() -> AsyncIterator[Served]:
    async with served(sim_config()) as s:
        yield s


@pytest.mark.committing
async def test_a_finished_sync_run_is_an_event_and_its_delivery_is_queued(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    r = await committing_client.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
    connection_id = r.json()["id"]
    r = await committing_client.post(
        f"/v1/connections/{connection_id}/syncs", json=range_body(), headers=tenant.headers()
    )
    run_id = uuid.UUID(r.json()["id"])
    async with httpx.AsyncClient() as http:
        ctx = sync_context(settings, committing_sessionmaker, redis, http)
        assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"

    [event] = await events_of(committing_client, tenant, "sync_run.succeeded")
    assert event["data"]["id"] == str(run_id) and event["data"]["status"] == "succeeded"
    assert await redis.exists(f"arq:job:deliver_event:{event['id']}") == 1


@pytest.mark.committing
async def test_credentials_expiring_is_said_once_per_connection_and_date(
    committing_client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any]
) -> None:
    from datetime import timedelta

    from acorn_api.amazon.jobs import warn_expiring_credentials
    from acorn_api.core.time import utcnow

    today = utcnow().date()
    ids = {}
    for name, days in (("soon", 5), ("later", 60)):
        body = connection_body("http://127.0.0.1:9", name=name, credentials_rotate_by=str(today + timedelta(days)))
        r = await committing_client.post("/v1/connections", json=body, headers=tenant.headers())
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]

    await warn_expiring_credentials(ctx)
    await warn_expiring_credentials(ctx)  # daily, and idempotent
    [event] = await events_of(committing_client, tenant, "connection.credentials_expiring")
    assert event["data"]["id"] == ids["soon"]
    assert event["data"]["warnings"][0].startswith("credentials_rotate_soon")

    r = await committing_client.patch(
        f"/v1/connections/{ids['soon']}",
        json={"credentials_rotate_by": str(today + timedelta(days=3))},
        headers=tenant.headers(),
    )
    assert r.status_code == 200, r.text
    await warn_expiring_credentials(ctx)  # a new date is a new warning
    assert len(await events_of(committing_client, tenant, "connection.credentials_expiring")) == 2
