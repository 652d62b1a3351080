"""The sync engine against the simulator over real HTTP, with real commits (fresh accounts per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import sync
from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem, Shipment, SyncRun
from acorn_api.ledger.archive import RawDocument
from acorn_api.settings import Settings
from acorn_sim import FaultConfig
from tests.amazon.test_sync_support import (
    ANCHOR,
    Served,
    connection_body,
    expected_orders,
    range_body,
    served,
    sim_config,
    stored_orders,
    sync_context,
)
from tests.conftest import AccountFactory, Tenant

pytestmark = pytest.mark.committing


@pytest.fixture
async def sim() -> AsyncIterator[Served]:
    async with served(sim_config()) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
async def tenant(make_committed_account: AccountFactory) -> Tenant:
    return await make_committed_account()


@pytest.fixture
def ctx(
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> sync.SyncContext:
    return sync_context(settings, committing_sessionmaker, redis, http)


async def add_connection(api: httpx.AsyncClient, tenant: Tenant, sim: Served, **overrides: Any) -> str:
    r = await api.post("/v1/connections", json=connection_body(sim.url, **overrides), headers=tenant.headers())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def queue_run(api: httpx.AsyncClient, tenant: Tenant, connection_id: str, body: dict[str, Any]) -> uuid.UUID:
    r = await api.post(f"/v1/connections/{connection_id}/syncs", json=body, headers=tenant.headers())
    assert r.status_code == 202, r.text
    return uuid.UUID(r.json()["id"])


async def get_run(api: httpx.AsyncClient, tenant: Tenant, run_id: uuid.UUID) -> dict[str, Any]:
    r = await api.get(f"/v1/sync-runs/{run_id}", headers=tenant.headers())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def full_sync(
    api: httpx.AsyncClient, tenant: Tenant, connection_id: str, ctx: sync.SyncContext
) -> dict[str, Any]:
    run_id = await queue_run(api, tenant, connection_id, range_body())
    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"
    return await get_run(api, tenant, run_id)


async def test_a_full_sync_stores_every_purchase_order_once_as_amazon_describes_it(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    run = await full_sync(committing_client, tenant, connection_id, ctx)
    truth = expected_orders(sim.simulator)
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth
    assert (run["fetched"], run["created"], run["updated"], run["unchanged"]) == (len(truth), len(truth), 0, 0)
    assert run["pages"] >= 5 and run["api_calls"] >= run["pages"]


async def test_a_second_sync_of_the_same_range_changes_nothing(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    await full_sync(committing_client, tenant, connection_id, ctx)
    async with committing_sessionmaker() as s:
        before = (
            await s.execute(
                select(PurchaseOrder.id, PurchaseOrder.updated_at).where(PurchaseOrder.account_id == tenant.id)
            )
        ).all()
    again = await full_sync(committing_client, tenant, connection_id, ctx)
    async with committing_sessionmaker() as s:
        after = (
            await s.execute(
                select(PurchaseOrder.id, PurchaseOrder.updated_at).where(PurchaseOrder.account_id == tenant.id)
            )
        ).all()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, len(before))
    assert sorted(before) == sorted(after)


async def test_fault_storms_lose_nothing_and_duplicate_nothing(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    faults = FaultConfig(
        throttle=0.15, server_error=0.1, timeout=0.05, truncated_json=0.1, expired_token=0.05, timeout_seconds=1.5
    )
    async with served(sim_config(seed=8, faults=faults)) as sim:
        connection_id = await add_connection(committing_client, tenant, sim)
        run = await full_sync(committing_client, tenant, connection_id, ctx)
        stats = (await httpx.AsyncClient().get(sim.url + "/_simulator/stats")).json()
        truth = expected_orders(sim.simulator)
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth
    assert sum(stats["faults"].values()) > 0
    assert run["retries"] >= sum(stats["faults"].values()) - stats["faults"].get("expired_token", 0)
    assert run["throttled_calls"] >= stats["faults"].get("throttle", 0)
    assert run["failed_request_ids"], "the request ids of failed calls are kept for support"
    assert run["created"] == len(truth)


async def test_an_access_token_expiring_mid_run_is_renewed(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with served(sim_config(seed=9, access_token_ttl=1, rate_overrides={"getPurchaseOrders": (4.0, 1)})) as sim:
        connection_id = await add_connection(committing_client, tenant, sim)
        run = await full_sync(committing_client, tenant, connection_id, ctx)
        tokens = (await httpx.AsyncClient().get(sim.url + "/_simulator/stats")).json()["tokensIssued"]
        truth = expected_orders(sim.simulator)
    assert tokens >= 2
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth
    assert run["status"] == "succeeded"


async def test_an_incremental_sync_updates_exactly_the_changed_orders(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    await full_sync(committing_client, tenant, connection_id, ctx)
    advanced = (await httpx.AsyncClient().post(sim.url + "/_simulator/advance", json={"changed_count": 6})).json()
    changed = {c["purchaseOrderNumber"] for c in advanced["changed"]}
    run_id = await queue_run(committing_client, tenant, connection_id, {"kind": "orders"})
    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"
    run = await get_run(committing_client, tenant, run_id)
    assert run["range_field"] == "changed"
    assert (run["created"], run["updated"]) == (0, len(changed))
    assert run["fetched"] == run["updated"] + run["unchanged"]
    assert await stored_orders(committing_sessionmaker, tenant.id) == expected_orders(sim.simulator)
    async with committing_sessionmaker() as s:
        touched = set(
            (
                await s.scalars(
                    select(PurchaseOrder.purchase_order_number).where(
                        PurchaseOrder.account_id == tenant.id, PurchaseOrder.sync_run_id == run_id
                    )
                )
            ).all()
        )
    assert touched == changed


async def test_two_workers_delivering_the_same_run_store_each_order_once(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    run_id = await queue_run(committing_client, tenant, connection_id, range_body())
    async with httpx.AsyncClient() as one, httpx.AsyncClient() as two:
        outcomes = await asyncio.gather(
            sync.execute(sync_context(settings, committing_sessionmaker, redis, one), tenant.id, run_id),
            sync.execute(sync_context(settings, committing_sessionmaker, redis, two), tenant.id, run_id),
        )
    assert sorted(outcomes, key=str) == sorted(["succeeded", None], key=str)
    assert await stored_orders(committing_sessionmaker, tenant.id) == expected_orders(sim.simulator)
    run = await get_run(committing_client, tenant, run_id)
    assert run["attempts"] == 1


async def test_a_second_delivery_of_a_finished_run_does_nothing(
    committing_client: httpx.AsyncClient, tenant: Tenant, sim: Served, ctx: sync.SyncContext
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    run = await full_sync(committing_client, tenant, connection_id, ctx)
    calls = (await httpx.AsyncClient().get(sim.url + "/_simulator/stats")).json()["requests"]
    assert await sync.execute(ctx, tenant.id, uuid.UUID(run["id"])) is None
    assert (await httpx.AsyncClient().get(sim.url + "/_simulator/stats")).json()["requests"] == calls
    assert (await get_run(committing_client, tenant, uuid.UUID(run["id"])))["attempts"] == 1


async def test_a_run_whose_worker_died_resumes_after_its_last_committed_page(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    run_id = await queue_run(committing_client, tenant, connection_id, range_body())

    async def die_after_two_pages(run: SyncRun) -> None:
        if run.pages == 2:
            raise asyncio.CancelledError  # what a killed worker looks like from here: nothing more is written

    dying = sync_context(settings, committing_sessionmaker, redis, http, after_page=die_after_two_pages)
    with pytest.raises(asyncio.CancelledError):
        await sync.execute(dying, tenant.id, run_id)
    live = sync_context(settings, committing_sessionmaker, redis, http)
    assert await sync.execute(live, tenant.id, run_id) is None, "a live heartbeat keeps others away"
    async with committing_sessionmaker() as s, s.begin():
        await s.execute(
            update(SyncRun).where(SyncRun.id == run_id).values(heartbeat_at=func.now() - timedelta(minutes=10))
        )
    recovered = await sync.recover_stale(live)
    assert (tenant.id, run_id) in recovered
    assert await sync.execute(live, tenant.id, run_id) == "succeeded"
    run = await get_run(committing_client, tenant, run_id)
    truth = expected_orders(sim.simulator)
    assert (run["attempts"], run["resumes"], run["created"], run["fetched"]) == (2, 1, len(truth), len(truth))
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth


async def test_status_sync_fills_acknowledged_and_received_quantities(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    await full_sync(committing_client, tenant, connection_id, ctx)
    run_id = await queue_run(committing_client, tenant, connection_id, {**range_body(), "kind": "order_status"})
    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"
    closed = next(po for po in sim.simulator.data.orders if po.state == "Closed" and po.items[0].received)
    async with committing_sessionmaker() as s:
        item = await s.scalar(
            select(PurchaseOrderItem)
            .join(PurchaseOrder, PurchaseOrder.id == PurchaseOrderItem.purchase_order_id)
            .where(PurchaseOrder.account_id == tenant.id, PurchaseOrder.purchase_order_number == closed.number)
            .where(PurchaseOrderItem.item_sequence_number == "1")
        )
        status = await s.scalar(
            select(PurchaseOrder.purchase_order_status).where(
                PurchaseOrder.account_id == tenant.id, PurchaseOrder.purchase_order_number == closed.number
            )
        )
    assert item is not None
    assert (item.acknowledged_quantity, item.received_quantity) == (closed.items[0].accepted, closed.items[0].received)
    assert status == "CLOSED"
    run = await get_run(committing_client, tenant, run_id)
    assert run["updated"] == len(sim.simulator.data.orders)


async def test_shipments_sync_stores_each_asn_once_with_its_document(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    body = {
        "kind": "shipments",
        "from": (ANCHOR - timedelta(days=40)).isoformat(),
        "to": (ANCHOR + timedelta(days=30)).isoformat(),
    }
    run_id = await queue_run(committing_client, tenant, connection_id, body)
    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"
    shipped = {po.shipment.identifier for po in sim.simulator.data.orders if po.is_shipped()}
    async with committing_sessionmaker() as s:
        rows = (await s.scalars(select(Shipment).where(Shipment.account_id == tenant.id))).all()
    assert {r.vendor_shipment_identifier for r in rows} == shipped
    assert all(r.raw_document_id is not None and r.purchase_order_numbers for r in rows)


async def test_reports_sync_archives_both_vendor_reports(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    body = {"kind": "reports", "from": (ANCHOR - timedelta(days=7)).isoformat(), "to": ANCHOR.isoformat()}
    run_id = await queue_run(committing_client, tenant, connection_id, body)
    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"
    run = await get_run(committing_client, tenant, run_id)
    reports = run["details"]["reports"]
    assert [r["report_type"] for r in reports] == list(sync.REPORT_TYPES)
    assert run["fetched"] == sum(r["rows"] for r in reports) and run["fetched"] > 0
    async with committing_sessionmaker() as s:
        sources = set((await s.scalars(select(RawDocument.source).where(RawDocument.account_id == tenant.id))).all())
    assert sources == {f"sp-api:report:{t}" for t in sync.REPORT_TYPES}


async def test_bad_credentials_fail_the_run_and_flag_the_connection(
    committing_client: httpx.AsyncClient, tenant: Tenant, sim: Served, ctx: sync.SyncContext
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim, refresh_token="Atzr|revoked")
    run_id = await queue_run(committing_client, tenant, connection_id, range_body())
    assert await sync.execute(ctx, tenant.id, run_id) == "failed"
    run = await get_run(committing_client, tenant, run_id)
    assert run["error"]["code"] == "invalid_grant"
    connection = (await committing_client.get(f"/v1/connections/{connection_id}", headers=tenant.headers())).json()
    assert connection["status"] == "error"
    assert "invalid grant" in connection["last_error"].lower() or "refresh_token" in connection["last_error"]


async def test_documents_are_archived_once_per_account_by_hash(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    first = await full_sync(committing_client, tenant, connection_id, ctx)
    await full_sync(committing_client, tenant, connection_id, ctx)
    async with committing_sessionmaker() as s:
        count = await s.scalar(select(func.count()).select_from(RawDocument).where(RawDocument.account_id == tenant.id))
    assert count == first["pages"], "identical pages fetched again are stored once"


async def test_an_unexpected_error_hands_the_run_back_for_the_retry_to_resume(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    run_id = await queue_run(committing_client, tenant, connection_id, range_body())

    async def break_after_two_pages(run: SyncRun) -> None:
        if run.pages == 2:
            raise RuntimeError("database went away")

    broken = sync_context(settings, committing_sessionmaker, redis, http, after_page=break_after_two_pages)
    with pytest.raises(RuntimeError):
        await sync.execute(broken, tenant.id, run_id)
    assert (await get_run(committing_client, tenant, run_id))["status"] == "queued"
    assert (
        await sync.execute(sync_context(settings, committing_sessionmaker, redis, http), tenant.id, run_id)
        == "succeeded"
    )
    run = await get_run(committing_client, tenant, run_id)
    assert (run["resumes"], run["created"]) == (1, len(sim.simulator.data.orders))


async def test_the_scheduler_queues_only_connections_that_are_due(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from acorn_api.amazon import sync_service as service
    from acorn_api.amazon.models import VendorConnection

    due = await add_connection(committing_client, tenant, sim, sync_schedule="PT30M")
    later = await add_connection(committing_client, tenant, sim, sync_schedule="PT30M")
    async with committing_sessionmaker() as s, s.begin():
        await s.execute(
            update(VendorConnection)
            .where(VendorConnection.id == uuid.UUID(due))
            .values(next_sync_at=func.now() - timedelta(minutes=1))
        )
    async with committing_sessionmaker() as s, s.begin():
        queued = await service.schedule_due(s)
    mine = [r for r in queued if r.account_id == tenant.id]
    assert [(str(r.connection_id), r.kind, r.trigger) for r in mine] == [(due, "orders", "schedule")]
    runs = (
        await committing_client.get("/v1/sync-runs", params={"connection_id": later}, headers=tenant.headers())
    ).json()
    assert runs["data"] == []
    connection = (await committing_client.get(f"/v1/connections/{due}", headers=tenant.headers())).json()
    assert datetime.fromisoformat(connection["next_sync_at"]) > datetime.now(UTC) + timedelta(minutes=25)


async def test_statuses_of_orders_not_synced_yet_are_counted_as_unknown(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    ctx: sync.SyncContext,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    run_id = await queue_run(committing_client, tenant, connection_id, {**range_body(), "kind": "order_status"})
    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded"
    run = await get_run(committing_client, tenant, run_id)
    assert run["details"]["unknown"] == run["fetched"] == len(sim.simulator.data.orders)
    assert (run["created"], run["updated"], run["unchanged"]) == (0, 0, 0)
    assert await stored_orders(committing_sessionmaker, tenant.id) == {}
