"""A worker SIGKILLed in the middle of loading an import leaves nothing; the re-run loads exactly what one
clean run loads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.ledger import jobs
from acorn_api.ledger.models import Import, Invoice, LedgerEntry, Payment, PaymentLine
from acorn_api.settings import Settings
from tests.amazon.test_crash_recovery import spawn_worker
from tests.conftest import AccountFactory
from tests.ledger import files

pytestmark = [pytest.mark.committing, pytest.mark.slow, pytest.mark.timeout(600)]

LINES = 30_000  # ~2.6 MB: big enough that the kill lands mid-load, small enough for a shared 2-core machine


def columns(model: Any, *skip: str) -> list[Any]:
    ignored = {"id", "account_id", "created_at", "updated_at", "source_import_id", "ledger_entry_id", *skip}
    return [c for c in model.__table__.c if c.key not in ignored]


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    async with sessionmaker() as s:
        for model in (LedgerEntry, Payment, PaymentLine, Invoice):
            rows = (await s.execute(select(*columns(model)).where(model.account_id == account_id))).all()
            out[model.__tablename__] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


async def stored(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> int:
    async with sessionmaker() as s:
        total = 0
        for model in (LedgerEntry, Payment, PaymentLine, Invoice):
            total += await s.scalar(select(func.count()).select_from(model).where(model.account_id == account_id)) or 0
        return total


async def import_row(sessionmaker: async_sessionmaker[AsyncSession], import_id: str) -> Import:
    async with sessionmaker() as s:
        row = await s.scalar(select(Import).where(Import.id == uuid.UUID(import_id)))
    assert row is not None
    return row


async def copying(sessionmaker: async_sessionmaker[AsyncSession], import_id: str) -> bool:
    """True once a backend is running a statement on this import's staging table (the load is under way)."""
    async with sessionmaker() as s:
        n = await s.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE :q AND pid <> pg_backend_pid()"),
            {"q": f"%import_stage_{uuid.UUID(import_id).hex}%"},
        )
    return bool(n)


async def test_a_worker_killed_mid_import_leaves_nothing_and_the_rerun_completes_it(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_url: str,
    redis: ArqRedis,
    tmp_path: Path,
) -> None:
    content = files.to_csv(files.remittance(invoices=LINES).rows).encode()
    await redis.delete(settings.arq_queue_name)
    victim = await make_committed_account("Crash Import Vendor")
    r = await committing_client.post(
        "/v1/imports",
        files={"file": ("big.csv", content)},
        data={"report_type": "remittance"},
        headers=victim.headers(),
    )
    assert r.status_code == 202, r.text
    import_id = r.json()["id"]

    log = (tmp_path / "worker.log").open("wb")
    worker = spawn_worker(database_url, settings, log)
    try:
        deadline = time.monotonic() + 120
        while not await copying(committing_sessionmaker, import_id):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # well into the COPY of the batches
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()

    dead = await import_row(committing_sessionmaker, import_id)
    assert (dead.status, dead.attempts) == ("running", 1), "the kill landed during the load"
    assert await stored(committing_sessionmaker, victim.id) == 0, "nothing of a killed load is visible"

    # the dead worker's job is stuck in arq until its timeout; the recovery job finds the unlocked, stale
    # import and enqueues it again for the restarted worker
    async with committing_sessionmaker() as s, s.begin():
        await s.execute(
            update(Import)
            .where(Import.id == uuid.UUID(import_id))
            .values(updated_at=func.now() - text("interval '1 hour'"))
        )
    ctx = {"sessionmaker": committing_sessionmaker, "redis": redis, "settings": settings}
    deadline = time.monotonic() + 30
    while await jobs.recover_stale_imports(ctx) < 1:  # the killed backend's lock goes with its connection
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    restarted = spawn_worker(database_url, settings, log)
    try:
        deadline = time.monotonic() + 300
        while (
            done := await import_row(committing_sessionmaker, import_id)
        ).status == "running" or done.status == "queued":
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            await asyncio.sleep(0.2)
    finally:
        restarted.send_signal(signal.SIGTERM)
        try:
            restarted.wait(20)
        except subprocess.TimeoutExpired:
            restarted.kill()
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    assert (done.rows_loaded, done.rows_duplicate) == (LINES + 9 + 1, 0)

    # one clean run of the same file in another account
    clean = await make_committed_account("Clean Import Vendor")
    r2 = await committing_client.post(
        "/v1/imports", files={"file": ("big.csv", content)}, data={"report_type": "remittance"}, headers=clean.headers()
    )
    assert await jobs.load_import(ctx, str(clean.id), r2.json()["id"]) == "succeeded"
    assert await snapshot(committing_sessionmaker, victim.id) == await snapshot(committing_sessionmaker, clean.id)
