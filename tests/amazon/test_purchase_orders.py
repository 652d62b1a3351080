"""Reading what the connector stored: purchase orders, shipments, raw documents; submitting invoices."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import connector, jobs, sync
from acorn_api.settings import Settings
from tests.amazon.test_sync_support import (
    ANCHOR,
    FAST_RETRY,
    Served,
    connection_body,
    range_body,
    served,
    sim_config,
    sync_context,
)
from tests.conftest import AccountFactory, Tenant

pytestmark = pytest.mark.committing


@pytest.fixture
async def sim() -> AsyncIterator[Served]:
    async with served(sim_config(seed=21, purchase_orders=60)) as s:
        yield s


@pytest.fixture
async def synced(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> AsyncIterator[tuple[Tenant, str, str]]:
    """An account with a store for ACME1, a connection and every order and shipment synced."""
    tenant = await make_committed_account()
    store = await committing_client.post(
        "/v1/stores",
        json={
            "code": "ACME1-DC",
            "name": "ACME1",
            "region": "NA",
            "marketplace": "US",
            "country": "US",
            "currency": "USD",
            "timezone": "America/New_York",
            "vendor_codes": ["ACME1"],
        },
        headers=tenant.headers(),
    )
    assert store.status_code == 201, store.text
    r = await committing_client.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
    connection_id = r.json()["id"]
    async with httpx.AsyncClient() as http:
        ctx = sync_context(settings, committing_sessionmaker, redis, http)
        wide = {"from": (ANCHOR - timedelta(days=40)).isoformat(), "to": (ANCHOR + timedelta(days=30)).isoformat()}
        for body in (range_body(), {**wide, "kind": "shipments"}):
            run = await committing_client.post(
                f"/v1/connections/{connection_id}/syncs", json=body, headers=tenant.headers()
            )
            assert await sync.execute(ctx, tenant.id, uuid.UUID(run.json()["id"])) == "succeeded"
    yield tenant, connection_id, store.json()["id"]


async def all_pages(client: httpx.AsyncClient, tenant: Tenant, url: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        r = await client.get(url, params=query, headers=tenant.headers())
        assert r.status_code == 200, r.text
        rows.extend(r.json()["data"])
        cursor = r.json()["next_cursor"]
        if not cursor:
            return rows


async def test_the_cursor_walks_every_purchase_order_once(
    committing_client: httpx.AsyncClient, synced: tuple[Tenant, str, str], sim: Served
) -> None:
    tenant, _, _ = synced
    rows = await all_pages(committing_client, tenant, "/v1/purchase-orders")
    numbers = [r["purchase_order_number"] for r in rows]
    assert sorted(numbers) == sorted(po.number for po in sim.simulator.data.orders)


async def test_orders_are_mapped_to_the_store_holding_their_vendor_code(
    committing_client: httpx.AsyncClient, synced: tuple[Tenant, str, str], sim: Served
) -> None:
    tenant, _, store_id = synced
    in_store = await all_pages(committing_client, tenant, "/v1/purchase-orders", store_id=store_id)
    assert {r["purchase_order_number"] for r in in_store} == {
        po.number for po in sim.simulator.data.orders if po.vendor_code == "ACME1"
    }
    others = await all_pages(committing_client, tenant, "/v1/purchase-orders", vendor_code="ACME2")
    assert others and all(r["store_id"] is None for r in others)


async def test_filters_by_state_asin_and_order_date(
    committing_client: httpx.AsyncClient, synced: tuple[Tenant, str, str], sim: Served
) -> None:
    tenant, _, _ = synced
    orders = sim.simulator.data.orders
    closed = await all_pages(committing_client, tenant, "/v1/purchase-orders", state="Closed")
    assert {r["purchase_order_number"] for r in closed} == {po.number for po in orders if po.state == "Closed"}
    asin = orders[0].items[0].product.asin
    with_asin = await all_pages(committing_client, tenant, "/v1/purchase-orders", asin=asin)
    assert {r["purchase_order_number"] for r in with_asin} == {
        po.number for po in orders if any(i.product.asin == asin for i in po.items)
    }
    since = ANCHOR - timedelta(days=10)
    recent = await all_pages(committing_client, tenant, "/v1/purchase-orders", ordered_after=since.isoformat())
    assert {r["purchase_order_number"] for r in recent} == {po.number for po in orders if po.order_date >= since}


async def test_a_purchase_order_shows_its_items_money_and_source_document(
    committing_client: httpx.AsyncClient, synced: tuple[Tenant, str, str], sim: Served
) -> None:
    tenant, _, _ = synced
    po = sim.simulator.data.orders[3]
    r = await committing_client.get(f"/v1/purchase-orders/{po.number}", headers=tenant.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["asin"] for i in body["items"]] == [i.product.asin for i in po.items]
    first = body["items"][0]
    assert first["net_cost"] == {
        "amount": str(po.items[0].product.net_cost.quantize(Decimal("0.0001"))),
        "currency": "USD",
    }
    expected_total = sum(
        (i.product.net_cost * (0 if i.cancelled else i.ordered) for i in po.items), Decimal(0)
    ).quantize(Decimal("0.0001"))
    assert body["total_net_cost"] == {"amount": str(expected_total), "currency": "USD"}
    document = await committing_client.get(f"/v1/raw-documents/{body['raw_document_id']}", headers=tenant.headers())
    assert document.status_code == 200
    doc = document.json()
    assert po.number in {o["purchaseOrderNumber"] for o in doc["payload"]["payload"]["orders"]}
    assert len(doc["sha256"]) == 64 and doc["compressed_bytes"] < doc["size_bytes"]
    assert doc["source"] == "sp-api:getPurchaseOrders" and doc["request_id"]


async def test_another_account_sees_neither_orders_nor_documents(
    committing_client: httpx.AsyncClient,
    synced: tuple[Tenant, str, str],
    make_committed_account: AccountFactory,
    sim: Served,
) -> None:
    tenant, _, _ = synced
    stranger = await make_committed_account()
    number = sim.simulator.data.orders[0].number
    body = (await committing_client.get(f"/v1/purchase-orders/{number}", headers=tenant.headers())).json()
    assert (await committing_client.get(f"/v1/purchase-orders/{number}", headers=stranger.headers())).status_code == 404
    r = await committing_client.get(f"/v1/raw-documents/{body['raw_document_id']}", headers=stranger.headers())
    assert r.status_code == 404
    assert (await committing_client.get("/v1/purchase-orders", headers=stranger.headers())).json()["data"] == []


async def test_shipments_are_listed_by_purchase_order(
    committing_client: httpx.AsyncClient, synced: tuple[Tenant, str, str], sim: Served
) -> None:
    tenant, _, _ = synced
    po = next(p for p in sim.simulator.data.orders if p.is_shipped())
    r = await committing_client.get(
        "/v1/shipments", params={"purchase_order_number": po.number}, headers=tenant.headers()
    )
    data = r.json()["data"]
    assert [s["vendor_shipment_identifier"] for s in data] == [po.shipment.identifier]
    assert data[0]["bill_of_lading_number"] == po.shipment.bill_of_lading


def invoice_body(connection_id: str, po: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "connection_id": connection_id,
        "invoice_number": f"INV-{uuid.uuid4().hex[:8]}",
        "date": ANCHOR.isoformat(),
        "remit_to_party_id": po.vendor_code,
        "currency": "USD",
        "items": [
            {
                "item_sequence_number": item.sequence,
                "purchase_order_number": po.number,
                "asin": item.product.asin,
                "quantity": max(item.accepted, 1),
                "net_cost": str(item.product.net_cost),
            }
            for item in po.items
        ],
    }
    body.update(overrides)
    return body


async def run_invoice_jobs(
    settings: Settings, sessionmaker: Any, redis: ArqRedis, account_id: str, submission_id: str
) -> str:
    async with connector.http_client(settings) as http:
        ctx = {
            "settings": settings,
            "sessionmaker": sessionmaker,
            "redis": redis,
            jobs.HTTP_KEY: http,
            jobs.TOKENS_KEY: connector.token_cache(settings),
            jobs.SYNC_OPTIONS_KEY: {"retry": FAST_RETRY},
        }
        status = await jobs.submit_invoice(ctx, account_id, submission_id)
        while status == "submitted":
            status = await jobs.poll_invoice_transaction(ctx, account_id, submission_id)
        return status


async def test_an_invoice_is_submitted_and_tracked_until_amazon_accepts_it(
    committing_client: httpx.AsyncClient,
    synced: tuple[Tenant, str, str],
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    tenant, connection_id, _ = synced
    po = sim.simulator.data.orders[5]
    r = await committing_client.post(
        "/v1/invoice-submissions", json=invoice_body(connection_id, po), headers=tenant.headers()
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.headers["location"].endswith(r.json()["id"])
    status = await run_invoice_jobs(settings, committing_sessionmaker, redis, str(tenant.id), r.json()["id"])
    assert status == "succeeded"
    got = (await committing_client.get(r.headers["location"], headers=tenant.headers())).json()
    assert got["transaction_status"] == "Success" and got["transaction_id"] and got["raw_document_id"]
    # accepted: the invoice is in the ledger with the submission as its source (no ERP file needed)
    invoice = await committing_client.get(f"/v1/invoices/{got['invoice_number']}", headers=tenant.headers())
    assert invoice.status_code == 200, invoice.text
    body = invoice.json()
    total = Decimal(got["total"]["amount"])
    assert (body["source"], body["source_submission_id"]) == ("submission", got["id"])
    assert (Decimal(body["amount"]), body["currency"]) == (total, got["total"]["currency"])
    assert [(e["entry_type"], Decimal(e["amount"])) for e in body["entries"]] == [("invoice", total)]


async def test_an_invoice_amazon_rejects_records_the_transaction_errors(
    committing_client: httpx.AsyncClient,
    synced: tuple[Tenant, str, str],
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    tenant, connection_id, _ = synced
    po = sim.simulator.data.orders[6]
    body = invoice_body(connection_id, po, total="1.00")
    r = await committing_client.post("/v1/invoice-submissions", json=body, headers=tenant.headers())
    status = await run_invoice_jobs(settings, committing_sessionmaker, redis, str(tenant.id), r.json()["id"])
    assert status == "failed"
    got = (await committing_client.get(f"/v1/invoice-submissions/{r.json()['id']}", headers=tenant.headers())).json()
    assert got["transaction_status"] == "Failure"
    assert got["errors"][0]["code"] == "InvoiceTotalMismatch"
    # rejected: nothing enters the ledger
    invoice = await committing_client.get(f"/v1/invoices/{body['invoice_number']}", headers=tenant.headers())
    assert invoice.status_code == 404


async def test_an_invoice_number_is_submitted_once_per_connection(
    committing_client: httpx.AsyncClient, synced: tuple[Tenant, str, str], sim: Served
) -> None:
    tenant, connection_id, _ = synced
    body = invoice_body(connection_id, sim.simulator.data.orders[7])
    first = await committing_client.post("/v1/invoice-submissions", json=body, headers=tenant.headers())
    again = await committing_client.post("/v1/invoice-submissions", json=body, headers=tenant.headers())
    assert (first.status_code, again.status_code) == (202, 409)
