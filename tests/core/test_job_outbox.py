"""Durable job dispatch: a job commits with its transaction, goes out after it, and survives Redis outages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import result_key_prefix
from arq.jobs import Job, JobStatus, serialize_result
from arq.worker import JobExecutionFailed
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.core.jobs import (
    JobOutbox,
    enqueue_after_commit,
    purge_dispatched_jobs,
    queue_settings,
    redispatch_jobs,
    transaction,
)
from acorn_api.core.time import utcnow
from acorn_api.settings import Settings
from tests.private_servers import PrivateRedis, private_redis

pytestmark = pytest.mark.committing


async def outbox_row(sessionmaker: async_sessionmaker[AsyncSession], job_id: str) -> JobOutbox | None:
    async with sessionmaker() as s:
        row: JobOutbox | None = await s.scalar(select(JobOutbox).where(JobOutbox.job_id == job_id))
        return row


async def arq_status(redis: ArqRedis, settings: Settings, job_id: str) -> JobStatus:
    return await Job(job_id, redis, _queue_name=settings.arq_queue_name).status()


async def forget(redis: ArqRedis, settings: Settings, job_id: str) -> None:
    """Take a test's job out of the shared test queue, so no worker of a later test picks it up."""
    await redis.zrem(settings.arq_queue_name, job_id)
    await redis.delete(f"arq:job:{job_id}")


@pytest.fixture
async def private() -> AsyncIterator[PrivateRedis]:
    with private_redis() as server:
        yield server


async def pool_for(server: PrivateRedis, settings: Settings) -> ArqRedis:
    redis_settings = queue_settings(server.url)
    redis_settings.conn_retries = 0
    return await create_pool(redis_settings, default_queue_name=settings.arq_queue_name)


def cron_ctx(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, settings: Settings, prefix: str
) -> dict[str, Any]:
    return {
        "sessionmaker": sessionmaker,
        "redis": redis,
        "settings": settings.model_copy(update={"redis_key_prefix": prefix}),
    }


async def test_a_job_commits_with_its_transaction_and_is_sent_after_it(
    committing_sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, settings: Settings
) -> None:
    job_id = f"test:{uuid.uuid4()}"
    account = uuid.uuid4()
    async with transaction(committing_sessionmaker, redis) as s:
        enqueue_after_commit(s, "expire_quotes", "a", 1, job_id=job_id, account_id=account)
        assert await arq_status(redis, settings, job_id) == JobStatus.not_found, "nothing leaves before the commit"
    row = await outbox_row(committing_sessionmaker, job_id)
    assert row is not None
    assert (row.function, row.args, row.account_id, row.attempts) == ("expire_quotes", ["a", 1], account, 1)
    assert row.dispatched_at is not None
    assert await arq_status(redis, settings, job_id) == JobStatus.queued
    await forget(redis, settings, job_id)


async def test_a_rolled_back_transaction_sends_nothing(
    committing_sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, settings: Settings
) -> None:
    job_id = f"test:{uuid.uuid4()}"
    with pytest.raises(RuntimeError):
        async with transaction(committing_sessionmaker, redis) as s:
            enqueue_after_commit(s, "expire_quotes", job_id=job_id)
            raise RuntimeError("the change failed")
    assert await outbox_row(committing_sessionmaker, job_id) is None
    assert await arq_status(redis, settings, job_id) == JobStatus.not_found


async def test_arguments_that_are_not_json_are_refused_when_enqueued(
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with committing_sessionmaker() as s:
        with pytest.raises(TypeError, match="JSON"):
            enqueue_after_commit(s, "expire_quotes", object())


async def test_a_job_written_while_redis_is_down_commits_and_the_cron_sends_it_later(
    committing_sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, private: PrivateRedis
) -> None:
    pool = await pool_for(private, settings)
    ctx = cron_ctx(committing_sessionmaker, pool, settings, f"outbox-{uuid.uuid4().hex[:8]}")
    try:
        await redispatch_jobs(ctx)  # Redis is fresh: this pass records its epoch
        private.shutdown()
        job_id = f"test:{uuid.uuid4()}"
        async with transaction(committing_sessionmaker, pool) as s:  # no error although Redis is gone
            enqueue_after_commit(s, "expire_quotes", job_id=job_id)
        row = await outbox_row(committing_sessionmaker, job_id)
        assert row is not None and row.dispatched_at is None, "committed, waiting for the cron"

        private.start()
        await pool.set(f"{ctx['settings'].redis_key_prefix}:jobs:redis-epoch", "kept")  # as if Redis persisted
        await redispatch_jobs(ctx)
        young = await outbox_row(committing_sessionmaker, job_id)
        assert young is not None and young.dispatched_at is None, "a young row is left to its own request"

        await redispatch_jobs(ctx, now=utcnow() + timedelta(seconds=31))
        sent = await outbox_row(committing_sessionmaker, job_id)
        assert sent is not None and sent.dispatched_at is not None and sent.attempts == 1
        assert await arq_status(pool, settings, job_id) == JobStatus.queued
    finally:
        await pool.aclose()


async def test_jobs_lost_with_redis_data_are_sent_again(
    committing_sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, private: PrivateRedis
) -> None:
    pool = await pool_for(private, settings)
    ctx = cron_ctx(committing_sessionmaker, pool, settings, f"outbox-{uuid.uuid4().hex[:8]}")
    try:
        await redispatch_jobs(ctx)
        job_id = f"test:{uuid.uuid4()}"
        async with transaction(committing_sessionmaker, pool) as s:
            enqueue_after_commit(s, "expire_quotes", job_id=job_id)
        assert await arq_status(pool, settings, job_id) == JobStatus.queued

        private.shutdown()  # SHUTDOWN NOSAVE: the queued job is gone
        private.start()
        assert await arq_status(pool, settings, job_id) == JobStatus.not_found
        await redispatch_jobs(ctx)
        assert await arq_status(pool, settings, job_id) == JobStatus.queued
        await redispatch_jobs(ctx)  # Redis kept its data since: nothing more to re-send
        row = await outbox_row(committing_sessionmaker, job_id)
        assert row is not None and row.attempts == 2
    finally:
        await pool.aclose()


async def test_a_job_arq_marked_expired_without_running_it_is_sent_again(
    committing_sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, private: PrivateRedis
) -> None:
    """arq took the id from its queue, Redis lost its data before the job was read, and arq stored a failed
    "job expired" result under the id (found by tests/webhooks/test_chaos.py). That result must not block the
    outbox's re-send after the data loss: the job never ran."""
    pool = await pool_for(private, settings)
    ctx = cron_ctx(committing_sessionmaker, pool, settings, f"outbox-{uuid.uuid4().hex[:8]}")
    try:
        await redispatch_jobs(ctx)
        job_id = f"test:{uuid.uuid4()}"
        async with transaction(committing_sessionmaker, pool) as s:
            enqueue_after_commit(s, "expire_quotes", job_id=job_id)
        private.shutdown()
        private.start()
        # what arq's worker writes when the job key it wants to run is gone (Worker.run_job, "job expired")
        now_ms = int(utcnow().timestamp() * 1000)
        result = serialize_result(
            "expire_quotes", (), {}, 1, now_ms, False, JobExecutionFailed("job expired"), now_ms, now_ms,
            f"{job_id}:expire_quotes", settings.arq_queue_name, job_id,
        )  # fmt: skip
        assert result is not None
        await pool.set(result_key_prefix + job_id, result, px=3_600_000)
        assert await arq_status(pool, settings, job_id) == JobStatus.complete

        await redispatch_jobs(ctx)  # the epoch key is gone: every recent job is re-sent
        assert await arq_status(pool, settings, job_id) == JobStatus.queued, "sent again, not taken as done"

        # a job that really ran keeps its result and is not sent again
        ran = f"test:{uuid.uuid4()}"
        done = serialize_result(
            "expire_quotes", (), {}, 1, now_ms, True, 0, now_ms, now_ms, f"{ran}:expire_quotes",
            settings.arq_queue_name, ran,
        )  # fmt: skip
        assert done is not None
        await pool.set(result_key_prefix + ran, done, px=3_600_000)
        async with transaction(committing_sessionmaker, pool) as s:
            enqueue_after_commit(s, "expire_quotes", job_id=ran)
        assert await arq_status(pool, settings, ran) == JobStatus.complete
    finally:
        await pool.aclose()


async def test_a_row_locked_by_another_worker_is_skipped_not_sent_twice(
    committing_sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, private: PrivateRedis
) -> None:
    pool = await pool_for(private, settings)
    ctx = cron_ctx(committing_sessionmaker, pool, settings, f"outbox-{uuid.uuid4().hex[:8]}")
    try:
        await redispatch_jobs(ctx)
        job_id = f"test:{uuid.uuid4()}"
        async with transaction(committing_sessionmaker, None) as s:  # no queue: the row waits in the outbox
            enqueue_after_commit(s, "expire_quotes", job_id=job_id)
        later = utcnow() + timedelta(seconds=31)
        async with committing_sessionmaker() as other, other.begin():
            await other.scalar(select(JobOutbox).where(JobOutbox.job_id == job_id).with_for_update())
            await redispatch_jobs(ctx, now=later)  # another worker holds the row: SKIP LOCKED passes it by
            assert await arq_status(pool, settings, job_id) == JobStatus.not_found
        await redispatch_jobs(ctx, now=later)
        row = await outbox_row(committing_sessionmaker, job_id)
        assert row is not None and row.dispatched_at is not None and row.attempts == 1
        assert await arq_status(pool, settings, job_id) == JobStatus.queued
    finally:
        await pool.aclose()


async def test_dispatched_rows_are_purged_after_a_day_and_undispatched_ones_kept(
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ids = {name: f"test:{uuid.uuid4()}" for name in ("old", "recent", "waiting", "deferred")}
    async with transaction(committing_sessionmaker, None) as s:
        for name, job_id in ids.items():
            enqueue_after_commit(
                s, "expire_quotes", job_id=job_id, defer_by=timedelta(days=2) if name == "deferred" else None
            )
    now = utcnow()
    async with committing_sessionmaker() as s, s.begin():
        for name, age in (
            ("old", timedelta(days=1, minutes=1)),
            ("recent", timedelta(hours=23)),
            ("deferred", timedelta(days=1, minutes=1)),
        ):
            await s.execute(update(JobOutbox).where(JobOutbox.job_id == ids[name]).values(dispatched_at=now - age))
    await purge_dispatched_jobs({"sessionmaker": committing_sessionmaker}, now=now)
    assert await outbox_row(committing_sessionmaker, ids["old"]) is None
    assert await outbox_row(committing_sessionmaker, ids["recent"]) is not None
    assert await outbox_row(committing_sessionmaker, ids["waiting"]) is not None
    assert await outbox_row(committing_sessionmaker, ids["deferred"]) is not None, "kept until it has run"
