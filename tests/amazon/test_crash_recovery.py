"""A worker process killed with SIGKILL in the middle of a sync, then restarted, leaves what one clean run leaves."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import sync
from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem, SyncRun
from acorn_api.settings import Settings
from tests.amazon.test_sync_support import (
    connection_body,
    expected_orders,
    range_body,
    served,
    sim_config,
    stored_orders,
    sync_context,
)
from tests.conftest import AccountFactory, Tenant

pytestmark = [pytest.mark.committing, pytest.mark.slow]

PO_COLUMNS = [
    c.key
    for c in PurchaseOrder.__table__.c
    if c.key
    not in {
        "id",
        "account_id",
        "connection_id",
        "store_id",
        "raw_document_id",
        "status_raw_document_id",
        "sync_run_id",
        "created_at",
        "updated_at",
    }
]
ITEM_COLUMNS = [
    c.key
    for c in PurchaseOrderItem.__table__.c
    if c.key not in {"id", "account_id", "purchase_order_id", "created_at", "updated_at"}
]


def spawn_worker(database_url: str, settings: Settings, log: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ACORN_DATABASE_URL": database_url,
        "ACORN_REDIS_URL": settings.redis_url or "",
        "ACORN_ARQ_QUEUE_NAME": settings.arq_queue_name,
        "ACORN_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "ACORN_ENVIRONMENT": "test",
        "ACORN_SPAPI_ALLOWED_HOSTS": ",".join(settings.spapi_allowed_hosts),
        "ACORN_LOG_JSON": "false",
        "ACORN_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "acorn_api.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def wait_for(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, ready: Any, seconds: float
) -> SyncRun:
    deadline = time.monotonic() + seconds
    while True:
        async with sessionmaker() as s:
            run = await s.get(SyncRun, run_id)
        assert run is not None
        if ready(run):
            return run
        assert time.monotonic() < deadline, f"run stuck: {run.status} pages={run.pages}"
        await asyncio.sleep(0.05)


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """Every stored purchase order and item, row by row, without the ids that differ between accounts."""
    po = PurchaseOrder.__table__
    item = PurchaseOrderItem.__table__
    async with sessionmaker() as s:
        orders = (await s.execute(select(*[po.c[c] for c in PO_COLUMNS]).where(po.c.account_id == account_id))).all()
        items = (
            await s.execute(
                select(po.c.purchase_order_number, *[item.c[c] for c in ITEM_COLUMNS])
                .join(po, (po.c.id == item.c.purchase_order_id) & (po.c.account_id == item.c.account_id))
                .where(item.c.account_id == account_id)
            )
        ).all()
    return sorted(tuple(r) for r in orders) + sorted(tuple(r) for r in items)


async def start_run(api: httpx.AsyncClient, tenant: Tenant, url: str) -> uuid.UUID:
    r = await api.post("/v1/connections", json=connection_body(url), headers=tenant.headers())
    run = await api.post(f"/v1/connections/{r.json()['id']}/syncs", json=range_body(), headers=tenant.headers())
    assert run.status_code == 202, run.text
    return uuid.UUID(run.json()["id"])


async def test_a_worker_killed_mid_sync_and_restarted_stores_what_a_clean_run_stores(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    settings: Settings,
    database_url: str,
    redis: ArqRedis,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    # slow Amazon down (2 pages/s) so the kill lands in the middle of the run
    config = sim_config(seed=44, purchase_orders=900, rate_overrides={"getPurchaseOrders": (2.0, 1)})
    async with served(config) as sim:
        await redis.delete(settings.arq_queue_name)
        victim = await make_committed_account("Crash Vendor")
        run_id = await start_run(committing_client, victim, sim.url)

        log = (tmp_path / "worker.log").open("wb")
        worker = spawn_worker(database_url, settings, log)
        try:
            try:
                killed_at = await wait_for(committing_sessionmaker, run_id, lambda r: r.pages >= 3, seconds=30)
            except AssertionError:
                log.flush()
                raise AssertionError((tmp_path / "worker.log").read_text()[-3000:]) from None
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        async with committing_sessionmaker() as s:
            dead = await s.get(SyncRun, run_id)
        assert dead is not None and dead.status == "running"
        assert 3 <= dead.pages < 20, "the kill landed mid-run"
        assert killed_at.watermark, "each committed page carries its watermark"

        # the dead worker's heartbeat goes stale; a restarted worker recovers the run and resumes it
        async with committing_sessionmaker() as s, s.begin():
            await s.execute(
                update(SyncRun).where(SyncRun.id == run_id).values(heartbeat_at=func.now() - timedelta(minutes=10))
            )
        restarted = spawn_worker(database_url, settings, log)
        try:
            done = await wait_for(
                committing_sessionmaker, run_id, lambda r: r.status != "running" and r.status != "queued", 120
            )
        finally:
            restarted.send_signal(signal.SIGTERM)
            try:
                restarted.wait(20)
            except subprocess.TimeoutExpired:
                restarted.kill()

        # one clean run of the same data, in another account
        clean = await make_committed_account("Clean Vendor")
        clean_run = await start_run(committing_client, clean, sim.url)
        async with httpx.AsyncClient() as http:
            assert (
                await sync.execute(sync_context(settings, committing_sessionmaker, redis, http), clean.id, clean_run)
                == "succeeded"
            )
        truth = expected_orders(sim.simulator)

    assert done.status == "succeeded", done.error
    assert (done.attempts, done.resumes) == (2, 1)
    assert done.pages >= dead.pages
    assert done.created == done.fetched == len(truth), "committed pages counted once, refetched ones not twice"
    assert await stored_orders(committing_sessionmaker, victim.id) == truth
    assert await snapshot(committing_sessionmaker, victim.id) == await snapshot(committing_sessionmaker, clean.id)
