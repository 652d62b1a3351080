"""Redis outages during syncs, tried against a private redis-server as an operator would (never the shared one).

- ``POST …/syncs`` while Redis is down answers 202 with the committed run; the job waits in the outbox and the run
  executes once Redis is back.
- A Redis restart that loses its data (``SHUTDOWN NOSAVE``) in the middle of a sync neither stops the worker nor
  leaves the run stuck: the worker reconnects, the run resumes and stores every order exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import Worker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from acorn_api import worker as worker_module
from acorn_api.amazon import connector
from acorn_api.amazon import jobs as amazon_jobs
from acorn_api.amazon.models import SyncRun
from acorn_api.core.db import Resources, make_engine, make_sessionmaker
from acorn_api.core.jobs import JobOutbox, queue_settings, redispatch_jobs
from acorn_api.core.time import utcnow
from acorn_api.main import create_app
from acorn_api.settings import Settings, to_async_database_url
from tests.amazon.test_purchase_orders import invoice_body
from tests.amazon.test_sync_support import (
    FAST_RETRY,
    connection_body,
    expected_orders,
    range_body,
    served,
    sim_config,
    stored_orders,
)
from tests.conftest import AccountFactory, _make_account
from tests.private_servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis

pytestmark = [pytest.mark.committing, pytest.mark.slow]


@pytest.fixture
async def private() -> AsyncIterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def private_settings(settings: Settings, private: PrivateRedis) -> Settings:
    """The test's settings, with the private Redis and a key prefix of its own."""
    return settings.model_copy(
        update={"redis_url": private.url, "redis_key_prefix": f"{settings.redis_key_prefix}-{uuid.uuid4().hex[:6]}"}
    )


@pytest.fixture
async def pool(private_settings: Settings) -> AsyncIterator[ArqRedis]:
    assert private_settings.redis_url
    settings = queue_settings(private_settings.redis_url)
    settings.conn_retries = 0
    redis = await create_pool(settings, default_queue_name=private_settings.arq_queue_name)
    yield redis
    await redis.aclose()


@pytest.fixture
async def api(private_settings: Settings, engine: AsyncEngine, pool: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its queue on the private Redis (its database is the shared test database)."""
    app = create_app(
        private_settings, resources=Resources(engine=None, sessionmaker=make_sessionmaker(engine), redis=pool)
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def run_of(sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> SyncRun:
    async with sessionmaker() as s:
        run = await s.get(SyncRun, run_id)
    assert run is not None
    return run


def tail(log: Path | None) -> str:
    return log.read_text()[-4000:] if log is not None and log.exists() else ""


async def wait_for_run(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, ready: Any, seconds: float, log: Path | None
) -> SyncRun:
    deadline = time.monotonic() + seconds
    while True:
        run = await run_of(sessionmaker, run_id)
        if ready(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run stuck: {run.status} pages={run.pages} error={run.error}\n{tail(log)}")
        await asyncio.sleep(0.1)


async def test_a_sync_requested_while_redis_is_down_is_accepted_and_runs_once_redis_is_back(
    api: httpx.AsyncClient,
    private: PrivateRedis,
    private_settings: Settings,
    pool: ArqRedis,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with served(sim_config(seed=46)) as sim:
        tenant = await make_committed_account("Queue Outage Vendor")
        created = await api.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
        assert created.status_code == 201, created.text
        syncs = f"/v1/connections/{created.json()['id']}/syncs"

        private.shutdown()
        started = time.monotonic()
        r = await api.post(syncs, json=range_body(), headers=tenant.headers())
        assert r.status_code == 202, r.text
        assert time.monotonic() - started < 5, "a dead queue does not hold the request up"
        run_id = uuid.UUID(r.json()["id"])
        assert r.json()["status"] == "queued"
        async with committing_sessionmaker() as s:
            row = await s.scalar(select(JobOutbox).where(JobOutbox.job_id == f"sync:{run_id}:0"))
        assert row is not None and row.dispatched_at is None, "the job waits in the outbox"
        again = await api.post(syncs, json=range_body(), headers=tenant.headers())
        assert (again.status_code, again.json()["id"]) == (200, str(run_id)), "the committed run, not a 500"

        private.start()
        # a Redis that kept its data (the epoch key survives); the cron sends what the request could not
        await pool.set(f"{private_settings.redis_key_prefix}:jobs:redis-epoch", "kept")
        ctx = {"sessionmaker": committing_sessionmaker, "redis": pool, "settings": private_settings}
        await redispatch_jobs(ctx, now=utcnow() + timedelta(seconds=31))
        job = Job(f"sync:{run_id}:0", pool, _queue_name=private_settings.arq_queue_name)
        assert await job.status() == JobStatus.queued

        worker = Worker(
            functions=[amazon_jobs.run_sync],
            redis_settings=queue_settings(private.url),
            queue_name=private_settings.arq_queue_name,
            on_startup=worker_module.startup,
            on_shutdown=worker_module.shutdown,
            ctx={"settings": private_settings},
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
        )
        try:
            await asyncio.wait_for(worker.async_run(), 120)
        finally:
            await worker.close()
        run = await run_of(committing_sessionmaker, run_id)
        truth = expected_orders(sim.simulator)
    assert run.status == "succeeded", run.error
    assert run.created == len(truth)
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth


def spawn_worker(settings: Settings, log: Any, *args: str) -> subprocess.Popen[bytes]:
    assert settings.database_url and settings.redis_url
    env = {
        **os.environ,
        "ACORN_DATABASE_URL": settings.database_url,
        "ACORN_REDIS_URL": settings.redis_url,
        "ACORN_ARQ_QUEUE_NAME": settings.arq_queue_name,
        "ACORN_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "ACORN_ENVIRONMENT": "test",
        "ACORN_SPAPI_ALLOWED_HOSTS": ",".join(settings.spapi_allowed_hosts),
        "ACORN_LOG_JSON": "false",
        "ACORN_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "acorn_api.cli", "worker", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def worker_check(settings: Settings, log: Any) -> int:
    return spawn_worker(settings, log, "--check").wait(30)


async def wait_healthy(settings: Settings, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not (await worker_module.check_health(settings))[0]:
        assert time.monotonic() < deadline, "the worker never reported healthy"
        await asyncio.sleep(0.2)


async def test_a_redis_restart_mid_sync_neither_stops_the_worker_nor_loses_the_run(
    api: httpx.AsyncClient,
    private: PrivateRedis,
    private_settings: Settings,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    # slow Amazon down (2 pages/s) so the restart lands in the middle of the run
    config = sim_config(seed=47, purchase_orders=900, rate_overrides={"getPurchaseOrders": (2.0, 1)})
    async with served(config) as sim:
        assert worker_check(private_settings, log) == 1, "no worker yet: the check fails"
        worker = spawn_worker(private_settings, log)
        try:
            await wait_healthy(private_settings, 30)
            tenant = await make_committed_account("Redis Restart Vendor")
            created = await api.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
            r = await api.post(
                f"/v1/connections/{created.json()['id']}/syncs", json=range_body(), headers=tenant.headers()
            )
            assert r.status_code == 202, r.text
            run_id = uuid.UUID(r.json()["id"])
            await wait_for_run(committing_sessionmaker, run_id, lambda run: run.pages >= 2, 30, log_path)

            private.shutdown()  # SHUTDOWN NOSAVE: the queue, the job, the worker's keys are gone
            await asyncio.sleep(2)
            private.start()
            restarted_at = time.monotonic()
            assert worker.poll() is None, "the worker rides out the outage"

            done = await wait_for_run(
                committing_sessionmaker, run_id, lambda run: run.status not in ("queued", "running"), 120, log_path
            )
            took = time.monotonic() - restarted_at
            assert worker.poll() is None
            await wait_healthy(private_settings, 15)
            assert worker_check(private_settings, log) == 0
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                exit_code = worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                raise
        truth = expected_orders(sim.simulator)
    assert exit_code == 0, "SIGTERM stops it cleanly"
    assert worker_check(private_settings, log) == 1, "a stopped worker removes its health key"
    assert done.status == "succeeded", (done.error, tail(log_path))
    assert took < 60, f"resumed {took:.0f} s after Redis came back"
    assert done.created == done.fetched == len(truth), "committed pages counted once"
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth


RESUME_WITHIN = 45  # seconds from the failure (or from PostgreSQL being back) to the run's next committed page


async def test_a_run_whose_worker_was_killed_resumes_within_45_seconds(
    api: httpx.AsyncClient,
    private_settings: Settings,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    config = sim_config(seed=48, purchase_orders=900, rate_overrides={"getPurchaseOrders": (2.0, 1)})
    async with served(config) as sim:
        victim = spawn_worker(private_settings, log)
        try:
            tenant = await make_committed_account("Killed Worker Vendor")
            created = await api.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
            r = await api.post(
                f"/v1/connections/{created.json()['id']}/syncs", json=range_body(), headers=tenant.headers()
            )
            run_id = uuid.UUID(r.json()["id"])
            await wait_for_run(committing_sessionmaker, run_id, lambda run: run.pages >= 3, 60, log_path)
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            victim.wait(10)
        finally:
            if victim.poll() is None:
                victim.kill()
        dead = await run_of(committing_sessionmaker, run_id)
        assert dead.status == "running", "the kill landed mid-run"

        restarted = spawn_worker(private_settings, log)  # the orchestrator restarts it at once
        try:
            await wait_for_run(
                committing_sessionmaker, run_id, lambda run: run.pages > dead.pages, RESUME_WITHIN + 15, log_path
            )
            resumed_after = time.monotonic() - killed_at
            done = await wait_for_run(
                committing_sessionmaker, run_id, lambda run: run.status not in ("queued", "running"), 120, log_path
            )
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(30)
        truth = expected_orders(sim.simulator)
    assert resumed_after < RESUME_WITHIN, f"resumed {resumed_after:.0f} s after the kill"
    assert done.status == "succeeded", (done.error, tail(log_path))
    assert (done.attempts, done.resumes) == (2, 1)
    assert done.created == done.fetched == len(truth)
    assert await stored_orders(committing_sessionmaker, tenant.id) == truth


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:  # outside the event loop: alembic runs its own
        yield server


async def test_a_postgresql_restart_mid_sync_resumes_the_run_within_45_seconds(
    postgres: PrivatePostgres, private_settings: Settings, pool: ArqRedis, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    config = sim_config(seed=49, purchase_orders=900, rate_overrides={"getPurchaseOrders": (2.0, 1)})
    pg_settings = private_settings.model_copy(update={"database_url": to_async_database_url(postgres.url)})
    engine = make_engine(pg_settings, pool_size=2, max_overflow=2)
    sessionmaker = make_sessionmaker(engine)
    app = create_app(pg_settings, resources=Resources(engine=engine, sessionmaker=sessionmaker, redis=pool))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    worker: subprocess.Popen[bytes] | None = None
    try:
        async with served(config) as sim, httpx.AsyncClient(transport=transport, base_url="http://test") as api:
            tenant = await _make_account(sessionmaker, pg_settings, "Database Restart Vendor", ())
            worker = spawn_worker(pg_settings.model_copy(update={"database_url": postgres.url}), log)
            created = await api.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
            assert created.status_code == 201, created.text
            r = await api.post(
                f"/v1/connections/{created.json()['id']}/syncs", json=range_body(), headers=tenant.headers()
            )
            run_id = uuid.UUID(r.json()["id"])
            await wait_for_run(sessionmaker, run_id, lambda run: run.pages >= 3, 60, log_path)
            before = (await run_of(sessionmaker, run_id)).pages

            postgres.stop()
            await asyncio.sleep(3)
            postgres.start()
            back_at = time.monotonic()

            await wait_for_run(sessionmaker, run_id, lambda run: run.pages > before + 1, RESUME_WITHIN + 15, log_path)
            resumed_after = time.monotonic() - back_at
            done = await wait_for_run(
                sessionmaker, run_id, lambda run: run.status not in ("queued", "running"), 120, log_path
            )
            assert worker.poll() is None, "the worker rides out the database outage"
            truth = expected_orders(sim.simulator)
            stored = await stored_orders(sessionmaker, tenant.id)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        await engine.dispose()
    assert resumed_after < RESUME_WITHIN, f"resumed {resumed_after:.0f} s after PostgreSQL came back"
    assert done.status == "succeeded", (done.error, tail(log_path))
    assert done.created == done.fetched == len(truth)
    assert stored == truth


async def test_an_invoice_accepted_by_amazon_just_before_redis_dies_still_gets_its_transaction_polled(
    api: httpx.AsyncClient,
    private: PrivateRedis,
    private_settings: Settings,
    pool: ArqRedis,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with served(sim_config(seed=50)) as sim:
        tenant = await make_committed_account("Invoice Outage Vendor")
        created = await api.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
        body = invoice_body(created.json()["id"], sim.simulator.data.orders[5])
        r = await api.post("/v1/invoice-submissions", json=body, headers=tenant.headers())
        assert r.status_code == 202, r.text
        submission_id = r.json()["id"]

        async def redis_dies_once_amazon_answers(response: httpx.Response) -> None:
            if response.request.method == "POST" and response.request.url.path.endswith("/invoices"):
                await asyncio.to_thread(private.shutdown)

        async with httpx.AsyncClient(event_hooks={"response": [redis_dies_once_amazon_answers]}) as http:
            ctx: dict[str, Any] = {
                "settings": private_settings,
                "sessionmaker": committing_sessionmaker,
                "redis": pool,
                amazon_jobs.HTTP_KEY: http,
                amazon_jobs.TOKENS_KEY: connector.token_cache(private_settings),
                amazon_jobs.SYNC_OPTIONS_KEY: {"retry": FAST_RETRY},
            }
            assert await amazon_jobs.submit_invoice(ctx, str(tenant.id), submission_id) == "submitted"
            async with committing_sessionmaker() as s:
                poll = await s.scalar(
                    select(JobOutbox).where(
                        JobOutbox.function == "poll_invoice_transaction",
                        JobOutbox.args == [str(tenant.id), submission_id],
                    )
                )
            assert poll is not None and poll.dispatched_at is None, "the poll committed with the submission"

            private.start()
            await redispatch_jobs(ctx)  # Redis came back empty: the cron re-sends what the outbox holds
            status = await Job(poll.arq_job_id, pool, _queue_name=private_settings.arq_queue_name).status()
            assert status in (JobStatus.queued, JobStatus.deferred)
            status_now = "submitted"
            while status_now == "submitted":
                status_now = await amazon_jobs.poll_invoice_transaction(ctx, str(tenant.id), submission_id)
    assert status_now == "succeeded"
