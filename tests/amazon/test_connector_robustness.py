"""Vendor codes filter the sync, deleting a connection stops its sync, /test holds no database connection
while Amazon answers, transient invoice failures are retried, and the simulator tells how to connect."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import connector, jobs, sync
from acorn_api.amazon.models import PurchaseOrder, SyncRun
from acorn_api.core.db import Resources, make_engine, make_sessionmaker
from acorn_api.main import create_app
from acorn_api.settings import Settings
from acorn_sim import FaultConfig
from tests.amazon.test_purchase_orders import invoice_body
from tests.amazon.test_sync_support import (
    FAST_RETRY,
    Served,
    connection_body,
    range_body,
    served,
    sim_config,
    sync_context,
)
from tests.conftest import AccountFactory, Tenant
from tests.test_live_server import free_port

pytestmark = pytest.mark.committing


@pytest.fixture
async def sim() -> AsyncIterator[Served]:
    async with served(sim_config(seed=31, purchase_orders=120)) as s:
        yield s


@pytest.fixture
async def tenant(make_committed_account: AccountFactory) -> Tenant:
    return await make_committed_account()


async def add_connection(api: httpx.AsyncClient, tenant: Tenant, sim: Served, **overrides: Any) -> str:
    r = await api.post("/v1/connections", json=connection_body(sim.url, **overrides), headers=tenant.headers())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def queue_run(api: httpx.AsyncClient, tenant: Tenant, connection_id: str) -> uuid.UUID:
    r = await api.post(f"/v1/connections/{connection_id}/syncs", json=range_body(), headers=tenant.headers())
    assert r.status_code == 202, r.text
    return uuid.UUID(r.json()["id"])


async def test_a_connection_imports_only_its_own_vendor_codes(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim, vendor_codes=["ACME1"])
    run_id = await queue_run(committing_client, tenant, connection_id)
    async with httpx.AsyncClient() as http:
        assert await sync.execute(sync_context(settings, committing_sessionmaker, redis, http), tenant.id, run_id) == (
            "succeeded"
        )
    async with committing_sessionmaker() as s:
        codes = set(
            (await s.scalars(select(PurchaseOrder.vendor_code).where(PurchaseOrder.account_id == tenant.id))).all()
        )
        run = await s.get(SyncRun, run_id)
    others = sum(1 for po in sim.simulator.data.orders if po.vendor_code != "ACME1")
    assert others > 0 and codes == {"ACME1"}
    assert run is not None and run.details["skipped_other_vendor_codes"] >= 1


async def test_deleting_a_connection_stops_its_running_sync(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    async with served(sim_config(seed=32, purchase_orders=400)) as sim:
        connection_id = await add_connection(committing_client, tenant, sim)
        run_id = await queue_run(committing_client, tenant, connection_id)
        deleted: list[int] = []

        async def delete_after_first_page(run: SyncRun) -> None:
            if not deleted:
                r = await committing_client.delete(f"/v1/connections/{connection_id}", headers=tenant.headers())
                assert r.status_code == 200, r.text
                deleted.append(run.pages)

        async with httpx.AsyncClient() as http:
            ctx = sync_context(settings, committing_sessionmaker, redis, http, after_page=delete_after_first_page)
            await sync.execute(ctx, tenant.id, run_id)
        requests_after = sum(sim.simulator.stats.requests.values())
    r = await committing_client.get(f"/v1/sync-runs/{run_id}", headers=tenant.headers())
    run = r.json()
    assert run["status"] == "failed" and run["error"]["code"] == "connection_deleted"
    assert run["pages"] == deleted[0] == 1  # not one more page was written after the delete
    total = len(sim.simulator.data.orders)
    assert run["fetched"] < total and requests_after < total / 100 + 40


async def test_the_connection_test_holds_no_database_connection_while_amazon_answers(
    make_committed_account: AccountFactory, settings: Settings, redis: ArqRedis
) -> None:
    """One pooled connection, Amazon slow to answer (1.5 s): eight concurrent tests must all get their answer.

    Holding the connection across the call would serialise them (8 x 1.5 s) past the 5 s pool timeout; the short
    database steps alone fit easily, even on a loaded machine."""
    engine = make_engine(settings, pool_size=1, max_overflow=0, pool_timeout=5.0)
    app = create_app(settings, resources=Resources(engine=engine, sessionmaker=make_sessionmaker(engine), redis=redis))
    tenant = await make_committed_account()
    slow = sim_config(seed=33, purchase_orders=10, faults=FaultConfig(timeout=1.0, timeout_seconds=1.5))
    try:
        async with (
            served(slow) as sim,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as api,
        ):
            connection_id = await add_connection(api, tenant, sim)
            answers = await asyncio.gather(
                *(api.post(f"/v1/connections/{connection_id}/test", headers=tenant.headers()) for _ in range(8))
            )
    finally:
        await engine.dispose()
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert all(a.json()["ok"] for a in answers)


async def _run_invoice(settings: Settings, sessionmaker: Any, redis: ArqRedis, account: str, sid: str) -> str:
    async with connector.http_client(settings) as http:
        ctx = {
            "settings": settings,
            "sessionmaker": sessionmaker,
            "redis": redis,
            jobs.HTTP_KEY: http,
            jobs.TOKENS_KEY: connector.token_cache(settings),
            jobs.SYNC_OPTIONS_KEY: {"retry": FAST_RETRY.__class__(max_attempts=2, base_delay=0.01, timeout=2.0)},
        }
        status = await jobs.submit_invoice(ctx, account, sid)
        while status == "submitted":
            status = await jobs.poll_invoice_transaction(ctx, account, sid)
        return status


async def test_a_transient_invoice_failure_is_retried_and_a_failed_one_can_be_retried(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    connection_id = await add_connection(committing_client, tenant, sim)
    po = sim.simulator.data.orders[3]
    r = await committing_client.post(
        "/v1/invoice-submissions", json=invoice_body(connection_id, po), headers=tenant.headers()
    )
    sid, account = r.json()["id"], str(tenant.id)
    url = f"/v1/invoice-submissions/{sid}"
    async with httpx.AsyncClient() as http:
        await http.put(f"{sim.url}/_simulator/faults", content=FaultConfig(server_error=1.0).model_dump_json())
        assert await _run_invoice(settings, committing_sessionmaker, redis, account, sid) == "queued"
        got = (await committing_client.get(url, headers=tenant.headers())).json()
        assert got["status"] == "queued" and got["errors"][0]["transient"] is True
        # a retry operation only for failed submissions
        early = await committing_client.post(f"{url}/retry", headers=tenant.headers())
        assert early.status_code == 409
        await http.put(f"{sim.url}/_simulator/faults", content=FaultConfig().model_dump_json())
        assert await _run_invoice(settings, committing_sessionmaker, redis, account, sid) == "succeeded"

        # accepted by Amazon, but our polling failed: a retry checks the transaction and does not resubmit
        second = await committing_client.post(
            "/v1/invoice-submissions",
            json=invoice_body(connection_id, sim.simulator.data.orders[4]),
            headers=tenant.headers(),
        )
        sid2 = second.json()["id"]
        await http.put(f"{sim.url}/_simulator/faults", content=FaultConfig().model_dump_json())
        async with connector.http_client(settings) as guarded:
            ctx = {
                "settings": settings,
                "sessionmaker": committing_sessionmaker,
                "redis": redis,
                jobs.HTTP_KEY: guarded,
                jobs.TOKENS_KEY: connector.token_cache(settings),
                jobs.SYNC_OPTIONS_KEY: {"retry": FAST_RETRY},
            }
            assert await jobs.submit_invoice(ctx, account, sid2) == "submitted"
            await http.put(f"{sim.url}/_simulator/faults", content=FaultConfig(expired_token=1.0).model_dump_json())
            assert await jobs.poll_invoice_transaction(ctx, account, sid2) == "failed"
        submits_before = sim.simulator.stats.requests["submitInvoices"]
        await http.put(f"{sim.url}/_simulator/faults", content=FaultConfig().model_dump_json())
    retried = await committing_client.post(f"/v1/invoice-submissions/{sid2}/retry", headers=tenant.headers())
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    assert await _run_invoice(settings, committing_sessionmaker, redis, account, sid2) == "succeeded"
    assert sim.simulator.stats.requests["submitInvoices"] == submits_before  # checked, not sent twice


def test_the_simulator_command_prints_how_to_connect() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACORN_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "acorn_api.cli",
            "simulator",
            "--port",
            str(port),
            "--client-id",
            "my-id",
            "--client-secret",
            "my-secret",
            "--refresh-token",
            "Atzr|mine",
            "--fault-rate",
            "0.2",
            "--purchase-orders",
            "5",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        text = "".join(lines)
        assert "client_id      my-id" in text and "client_secret  my-secret" in text
        assert "refresh_token  Atzr|mine" in text and f"http://127.0.0.1:{port}/auth/o2/token" in text
        assert "20% of calls" in text
        for _ in range(100):
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/auth/o2/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": "Atzr|mine",
                        "client_id": "my-id",
                        "client_secret": "my-secret",
                    },
                )
                break
            except httpx.ConnectError:
                import time

                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["access_token"]
    finally:
        process.terminate()
        process.wait(10)


async def test_concurrent_duplicates_get_409_not_500(
    committing_client: httpx.AsyncClient, tenant: Tenant, sim: Served
) -> None:
    body = connection_body(sim.url, name="Raced")
    answers = await asyncio.gather(
        *(committing_client.post("/v1/connections", json=body, headers=tenant.headers()) for _ in range(8))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 7, [a.text for a in answers if a.status_code not in (201, 409)]
    connection_id = next(a.json()["id"] for a in answers if a.status_code == 201)
    invoice = invoice_body(connection_id, sim.simulator.data.orders[0])
    answers = await asyncio.gather(
        *(committing_client.post("/v1/invoice-submissions", json=invoice, headers=tenant.headers()) for _ in range(8))
    )
    assert sorted(a.status_code for a in answers) == [202] + [409] * 7
