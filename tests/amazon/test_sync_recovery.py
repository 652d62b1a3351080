"""No sync run is wedged: an unexpected error ends in a retry or in ``failed``; a queued run whose job was lost is
enqueued again by the recovery cron; a dead worker's run is handed back with a durable job."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import sync
from acorn_api.amazon.models import SyncRun
from acorn_api.core.jobs import JobOutbox
from acorn_api.core.time import utcnow
from acorn_api.settings import Settings
from tests.amazon.test_sync_support import Served, connection_body, range_body, served, sim_config, sync_context
from tests.conftest import AccountFactory, Tenant

pytestmark = pytest.mark.committing


@pytest.fixture
async def sim() -> AsyncIterator[Served]:
    async with served(sim_config(seed=11)) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
async def tenant(make_committed_account: AccountFactory) -> Tenant:
    return await make_committed_account("Recovery Vendor")


async def queue_run(api: httpx.AsyncClient, tenant: Tenant, sim: Served) -> uuid.UUID:
    r = await api.post("/v1/connections", json=connection_body(sim.url), headers=tenant.headers())
    assert r.status_code == 201, r.text
    run = await api.post(f"/v1/connections/{r.json()['id']}/syncs", json=range_body(), headers=tenant.headers())
    assert run.status_code == 202, run.text
    return uuid.UUID(run.json()["id"])


async def run_of(sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> SyncRun:
    async with sessionmaker() as s:
        run = await s.get(SyncRun, run_id)
    assert run is not None
    return run


async def jobs_for(sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> list[JobOutbox]:
    async with sessionmaker() as s:
        rows = await s.scalars(
            select(JobOutbox).where(JobOutbox.job_id.like(f"sync:{run_id}:%")).order_by(JobOutbox.created_at)
        )
        return list(rows.all())


def job(redis: ArqRedis, settings: Settings, job_id: str) -> Job:
    return Job(job_id, redis, _queue_name=settings.arq_queue_name)


async def forget(redis: ArqRedis, settings: Settings, job_id: str) -> None:
    """What a Redis restart without persistence does to a queued job."""
    await redis.zrem(settings.arq_queue_name, job_id)
    await redis.delete(f"arq:job:{job_id}")


async def test_an_unexpected_error_leaves_the_run_queued_with_a_delayed_retry_behind_it(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> None:
    run_id = await queue_run(committing_client, tenant, sim)
    await forget(redis, settings, f"sync:{run_id}:0")

    async def explode(run: SyncRun) -> None:
        raise RuntimeError("database went away")

    broken = sync_context(settings, committing_sessionmaker, redis, http, after_page=explode)
    before = utcnow()
    with pytest.raises(RuntimeError):
        await sync.execute(broken, tenant.id, run_id)
    run = await run_of(committing_sessionmaker, run_id)
    assert (run.status, run.worker_token, run.details["unexpected_errors"]) == ("queued", None, 1)
    retry = (await jobs_for(committing_sessionmaker, run_id))[-1]
    assert retry.job_id == f"sync:{run_id}:1"
    assert retry.defer_until is not None and retry.defer_until >= before + timedelta(seconds=5)
    assert retry.dispatched_at is not None, "sent to arq at once, to run later"
    assert await job(redis, settings, f"sync:{run_id}:1").status() == JobStatus.deferred
    await forget(redis, settings, f"sync:{run_id}:1")


async def test_an_error_that_keeps_coming_back_fails_the_run_with_the_error(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> None:
    run_id = await queue_run(committing_client, tenant, sim)

    async def explode(run: SyncRun) -> None:
        raise RuntimeError("a bug on every page")

    broken = sync_context(settings, committing_sessionmaker, redis, http, after_page=explode)
    for _ in range(sync.MAX_UNEXPECTED_ERRORS):
        with pytest.raises(RuntimeError):
            await sync.execute(broken, tenant.id, run_id)
    run = await run_of(committing_sessionmaker, run_id)
    assert run.status == "failed"
    assert run.error is not None and run.error["message"] == "a bug on every page"
    assert run.finished_at is not None
    retries = [row.job_id for row in await jobs_for(committing_sessionmaker, run_id)]
    assert retries == [f"sync:{run_id}:{n}" for n in range(sync.MAX_UNEXPECTED_ERRORS)], "no retry after the last"
    for job_id in retries:
        await forget(redis, settings, job_id)
    again = await committing_client.post(
        f"/v1/connections/{run.connection_id}/syncs", json=range_body(), headers=tenant.headers()
    )
    assert again.status_code == 202 and again.json()["id"] != str(run_id), "a failed run does not block new ones"
    await forget(redis, settings, f"sync:{again.json()['id']}:0")


async def test_a_queued_run_whose_job_was_lost_is_enqueued_again_and_one_with_a_job_is_left_alone(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> None:
    run_id = await queue_run(committing_client, tenant, sim)
    ctx = sync_context(settings, committing_sessionmaker, redis, http)
    later = utcnow() + sync.QUEUED_STALE_AFTER + timedelta(seconds=1)

    assert (tenant.id, run_id) not in await sync.requeue_orphans(ctx, now=later), "its job is queued in arq"

    await forget(redis, settings, f"sync:{run_id}:0")  # Redis restarted without its data
    assert (tenant.id, run_id) not in await sync.requeue_orphans(ctx), "the outbox gets its minute first"
    assert (tenant.id, run_id) in await sync.requeue_orphans(ctx, now=later)
    assert await job(redis, settings, f"sync:{run_id}:0").status() == JobStatus.queued
    assert (await run_of(committing_sessionmaker, run_id)).details["requeued_at"]
    assert (tenant.id, run_id) not in await sync.requeue_orphans(ctx, now=later), "once is enough"

    assert await sync.execute(ctx, tenant.id, run_id) == "succeeded", "the job behind it runs the run"
    await forget(redis, settings, f"sync:{run_id}:0")


async def test_a_dead_workers_run_goes_back_to_the_queue_with_a_job_in_the_outbox(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    sim: Served,
    settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> None:
    run_id = await queue_run(committing_client, tenant, sim)
    await forget(redis, settings, f"sync:{run_id}:0")
    async with committing_sessionmaker() as s, s.begin():  # a worker claimed it (attempt 1), then died
        await s.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(status="running", attempts=1, worker_token="dead", heartbeat_at=func.now() - timedelta(seconds=26))
        )
    ctx = sync_context(settings, committing_sessionmaker, redis, http)
    assert (tenant.id, run_id) in await sync.recover_stale(ctx)
    assert (await run_of(committing_sessionmaker, run_id)).status == "queued"
    resume = (await jobs_for(committing_sessionmaker, run_id))[-1]
    assert (resume.job_id, resume.dispatched_at is not None) == (f"sync:{run_id}:1", True)
    assert await job(redis, settings, f"sync:{run_id}:1").status() == JobStatus.queued
    await forget(redis, settings, f"sync:{run_id}:1")
