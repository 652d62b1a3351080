"""The user story, end to end through the API and real arq workers against the simulator over HTTP.

A user adds a connection pointed at the simulator, starts a sync, and reads purchase orders, shipments and
their raw payloads through the API; scheduled syncs then run by themselves; faults lose nothing and
duplicate nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon.jobs import SYNC_OPTIONS_KEY
from acorn_api.amazon.models import VendorConnection
from acorn_api.settings import Settings
from acorn_api.worker import worker_settings
from tests.amazon.test_sync_support import (
    ANCHOR,
    FAST_RETRY,
    connection_body,
    expected_orders,
    range_body,
    served,
    sim_config,
    stored_orders,
)
from tests.conftest import AccountFactory

pytestmark = pytest.mark.committing


async def run_worker(settings: Settings) -> None:
    """One real arq worker in burst mode: it drains the queue, then stops."""
    ws = worker_settings(settings)
    worker = Worker(
        functions=ws.functions,
        on_startup=ws.on_startup,
        on_shutdown=ws.on_shutdown,
        redis_settings=ws.redis_settings,
        queue_name=ws.queue_name,
        ctx={**ws.ctx, SYNC_OPTIONS_KEY: {"retry": FAST_RETRY, "report_poll_initial": 0.01}},
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_a_user_syncs_amazon_and_reads_orders_shipments_and_payloads(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    settings: Settings,
    redis: ArqRedis,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await redis.delete(settings.arq_queue_name)  # jobs other tests queued for simulators that are gone
    user = await make_committed_account("End-to-end Vendor")
    api, headers = committing_client, user.headers()
    async with served(sim_config(seed=33, purchase_orders=200)) as sim, httpx.AsyncClient(base_url=sim.url) as control:
        # 1. the user adds a connection and checks it
        r = await api.post("/v1/connections", json=connection_body(sim.url, sync_schedule="PT15M"), headers=headers)
        assert r.status_code == 201, r.text
        connection = r.json()
        assert (await api.post(f"/v1/connections/{connection['id']}/test", headers=headers)).json()["ok"] is True

        # 2. starts a sync while Amazon misbehaves; asking twice gives the same run
        await control.put("/_simulator/faults", json={"throttle": 0.1, "server_error": 0.1, "truncated_json": 0.05})
        r = await api.post(f"/v1/connections/{connection['id']}/syncs", json=range_body(), headers=headers)
        assert r.status_code == 202, r.text
        run_url = r.headers["location"]
        again = await api.post(f"/v1/connections/{connection['id']}/syncs", json={"kind": "orders"}, headers=headers)
        assert (again.status_code, again.json()["id"]) == (200, r.json()["id"])
        wide = {"from": (ANCHOR - timedelta(days=40)).isoformat(), "to": (ANCHOR + timedelta(days=30)).isoformat()}
        shipments_run = await api.post(
            f"/v1/connections/{connection['id']}/syncs", json={**wide, "kind": "shipments"}, headers=headers
        )
        assert shipments_run.status_code == 202

        await run_worker(settings)

        run = (await api.get(run_url, headers=headers)).json()
        assert run["status"] == "succeeded", run
        asn_run = (await api.get(f"/v1/sync-runs/{shipments_run.json()['id']}", headers=headers)).json()
        assert asn_run["status"] == "succeeded"
        assert run["created"] == 200
        stats = (await control.get("/_simulator/stats")).json()
        refused = stats["throttled"] + sum(stats["faults"].values()) - stats["faults"].get("throttle", 0)
        assert refused > 0 and run["retries"] + asn_run["retries"] == refused, "every refused call was retried"

        # 3. reads purchase orders, one in detail, and the payload Amazon sent
        listed = (await api.get("/v1/purchase-orders", params={"limit": 200}, headers=headers)).json()["data"]
        assert sorted(p["purchase_order_number"] for p in listed) == sorted(p.number for p in sim.simulator.data.orders)
        shipped = next(p for p in sim.simulator.data.orders if p.is_shipped())
        detail = (await api.get(f"/v1/purchase-orders/{shipped.number}", headers=headers)).json()
        assert len(detail["items"]) == len(shipped.items)
        payload = (await api.get(f"/v1/raw-documents/{detail['raw_document_id']}", headers=headers)).json()["payload"]
        assert shipped.number in {o["purchaseOrderNumber"] for o in payload["payload"]["orders"]}
        asns = (
            await api.get("/v1/shipments", params={"purchase_order_number": shipped.number}, headers=headers)
        ).json()
        assert [s["vendor_shipment_identifier"] for s in asns["data"]] == [shipped.shipment.identifier]

        # 4. time passes: Amazon changes orders and the scheduled sync picks them up by itself
        await control.put("/_simulator/faults", json={})
        changed = (await control.post("/_simulator/advance", json={"changed_count": 4})).json()["changed"]
        async with committing_sessionmaker() as s, s.begin():
            await s.execute(
                update(VendorConnection)
                .where(VendorConnection.id == uuid.UUID(connection["id"]))
                .values(next_sync_at=VendorConnection.next_sync_at - timedelta(hours=1))
            )
        await redis.enqueue_job("schedule_due_syncs")
        await run_worker(settings)

        scheduled: list[dict[str, Any]] = (
            await api.get(
                "/v1/sync-runs", params={"connection_id": connection["id"], "kind": "orders"}, headers=headers
            )
        ).json()["data"]
        latest = scheduled[0]
        assert (latest["trigger"], latest["status"], latest["range_field"]) == ("schedule", "succeeded", "changed")
        assert latest["updated"] == len(changed) and latest["created"] == 0
        after = (await api.get(f"/v1/connections/{connection['id']}", headers=headers)).json()
        assert after["next_sync_at"] > connection["next_sync_at"] and after["last_success_at"]

        # 5. nothing lost, nothing twice
        assert await stored_orders(committing_sessionmaker, user.id) == expected_orders(sim.simulator)
