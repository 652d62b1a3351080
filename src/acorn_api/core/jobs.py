"""Durable job dispatch: a transactional outbox in front of arq, the one after-commit, at-least-once mechanism.

How a job travels:

1. ``enqueue_after_commit(session, "function", *ids, job_id=...)`` adds a ``job_outbox`` row to the session, so
   the job's intent commits or rolls back with the change that asked for it. Nothing is sent yet.
2. After the commit (the request's session dependency in ``core/db.py``, or ``job_session`` / ``transaction`` in a
   job), ``flush_pending_jobs`` sends each row to arq and stamps ``dispatched_at`` in one small follow-up
   statement. If Redis is down it logs and gives up quietly: the write is committed, the client still gets its
   2xx/202, the row stays undispatched.
3. The ``redispatch_jobs`` cron (every 10 s, on every worker) sends rows left undispatched for longer than
   ``REDISPATCH_AFTER`` with ``SELECT … FOR UPDATE SKIP LOCKED``, so two workers do not send one row twice.
   It also notices when Redis lost its data (a restart without persistence: the epoch key it keeps is gone)
   and then re-sends every row dispatched within the retention window, since those jobs may have been lost.
4. ``purge_dispatched_jobs`` (hourly) deletes rows dispatched (and, for deferred jobs, due) more than
   ``RETENTION`` ago.

So a job runs **at least once** after its transaction commits, and never if it rolled back. It may run more
than once (a crash between sending and stamping, a Redis data loss, arq's own redelivery): every job must be
idempotent. An explicit ``job_id`` also lets arq drop a second copy while the first is queued or its result
is kept; without one, the outbox row's id is used, so a re-sent row is still recognised.

The same mechanism carries any "after this commits, do that" effect. An events/webhooks outbox, for example,
writes its ``events`` row and, in the same transaction::

    event = Event(id=uuid.uuid4(), account_id=account_id, ...)  # the id is needed before the flush
    session.add(event)
    enqueue_after_commit(session, "deliver_event", str(event.id), job_id=f"event:{event.id}", account_id=account_id)

and the delivery job reads the event by id (a rolled-back event is never delivered; a committed one is
delivered at least once). A job scheduling its own retry does the same in its ``job_session`` with
``defer_by=...`` and a new ``job_id`` (arq refuses an id it still holds); so does a deliberate replay.
Arguments must be JSON values (pass ids as strings).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import structlog
from arq.connections import ArqRedis, RedisSettings
from arq.constants import result_key_prefix
from arq.jobs import Job
from arq.worker import JobExecutionFailed
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Index, String, Text, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import Base
from acorn_api.core.time import utcnow

log = structlog.get_logger(__name__)

PENDING_JOBS_KEY = "acorn_pending_jobs"
#: A row still undispatched after this long is re-sent by the cron (the request that wrote it failed to send it).
REDISPATCH_AFTER = timedelta(seconds=30)
#: Dispatched rows are kept this long (for inspection, and to re-send after a Redis data loss), then purged.
RETENTION = timedelta(days=1)
#: The most a request waits for Redis when sending its jobs; after that the cron takes over.
DISPATCH_TIMEOUT = 2.0
REDISPATCH_BATCH = 500
EPOCH_KEY = "jobs:redis-epoch"


def queue_settings(redis_url: str) -> RedisSettings:
    """arq's Redis settings for the API and the worker: a command on a connection that a Redis restart closed is
    retried on a fresh one (twice, briefly), instead of failing the first request after every restart."""
    settings = RedisSettings.from_dsn(redis_url)
    settings.retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError]
    return settings


class JobOutbox(Base):
    """A job whose transaction committed; operational, not tenant data (no foreign keys, purged after a day)."""

    __tablename__ = "job_outbox"
    __table_args__ = (
        # the cron's query: undispatched rows, oldest first
        Index("ix_job_outbox_undispatched", "created_at", postgresql_where=text("dispatched_at IS NULL")),
        Index("ix_job_outbox_dispatched_at", "dispatched_at", postgresql_where=text("dispatched_at IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    job_id: Mapped[str | None] = mapped_column(String(200))
    account_id: Mapped[uuid.UUID | None]
    defer_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def arq_job_id(self) -> str:
        return self.job_id or f"outbox:{self.id.hex}"


def enqueue_after_commit(
    session: AsyncSession,
    function: str,
    *args: Any,
    job_id: str | None = None,
    account_id: uuid.UUID | None = None,
    defer_by: timedelta | None = None,
) -> None:
    """Record a job in the session's transaction; it is sent once that transaction has committed.

    Pass ids (as strings), not objects. ``job_id`` makes arq refuse a duplicate while the first is queued or
    running. The job is delivered at least once, so it must be idempotent.
    """
    try:
        json.dumps(args)
    except TypeError as exc:
        raise TypeError(f"job {function!r} arguments must be JSON values (pass ids as strings): {exc}") from None
    row = JobOutbox(
        id=uuid.uuid4(),
        function=function,
        args=list(args),
        job_id=job_id,
        account_id=account_id,
        defer_until=utcnow() + defer_by if defer_by else None,
        attempts=0,
    )
    session.add(row)
    session.info.setdefault(PENDING_JOBS_KEY, []).append(row)


async def _send(redis: ArqRedis, row: JobOutbox) -> None:
    defer = row.defer_until if row.defer_until is not None and row.defer_until > utcnow() else None
    # None back means arq already holds a job with this id (queued, running or its result): sent, either way --
    # unless that result says the job "expired": arq took the id from its queue but found no job behind it (Redis
    # lost its data in between) and recorded a failure for a job that never ran. That result would block the
    # re-send for as long as it is kept, so it is dropped and the job enqueued again.
    job = await redis.enqueue_job(row.function, *row.args, _job_id=row.arq_job_id, _defer_until=defer)
    if job is None and await _expired_without_running(redis, row.arq_job_id):
        await redis.delete(result_key_prefix + row.arq_job_id)
        await redis.enqueue_job(row.function, *row.args, _job_id=row.arq_job_id, _defer_until=defer)


async def _expired_without_running(redis: ArqRedis, job_id: str) -> bool:
    try:
        info = await Job(job_id, redis).result_info()
    except Exception:  # an unreadable result: leave it alone
        return False
    return (
        info is not None
        and not info.success
        and isinstance(info.result, JobExecutionFailed)
        and "expired" in str(info.result)
    )


async def flush_pending_jobs(session: AsyncSession, redis: ArqRedis | None) -> None:
    """After a commit: send the session's jobs and stamp them dispatched. Never raises for an outage.

    A job that cannot be sent now (Redis down, slow, or the stamp cannot be written) stays in the outbox for
    the ``redispatch_jobs`` cron; the caller's write has committed, so the caller answers success.
    """
    pending: list[JobOutbox] = session.info.pop(PENDING_JOBS_KEY, [])
    if not pending:
        return
    sent: list[uuid.UUID] = []
    if redis is None:
        log.warning("job_dispatch_deferred", reason="no queue in this process", jobs=len(pending))
    else:
        for row in pending:
            try:
                await asyncio.wait_for(_send(redis, row), DISPATCH_TIMEOUT)
            except Exception as exc:  # Redis down or slow: the cron re-sends from the outbox
                log.warning("job_dispatch_deferred", function=row.function, job_id=row.arq_job_id, error=_describe(exc))
                break
            sent.append(row.id)
    if not sent:
        return
    try:
        await session.execute(
            update(JobOutbox)
            .where(JobOutbox.id.in_(sent), JobOutbox.dispatched_at.is_(None))
            .values(dispatched_at=func.clock_timestamp(), attempts=JobOutbox.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    except Exception as exc:  # the jobs went out; the cron may send them again, which idempotent jobs tolerate
        log.warning("job_dispatch_unrecorded", jobs=len(sent), error=_describe(exc))
        try:
            await session.rollback()
        except Exception as rollback_exc:
            log.debug("job_dispatch_rollback_failed", error=_describe(rollback_exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis | None
) -> AsyncIterator[AsyncSession]:
    """One unit of work outside a request: commits at the end, rolls back on error, then sends its jobs."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        await flush_pending_jobs(session, redis)


@asynccontextmanager
async def job_session(ctx: dict[str, Any]) -> AsyncIterator[AsyncSession]:
    """A worker job's one transaction: commits at the end, rolls back on error, then sends its jobs."""
    async with transaction(ctx["sessionmaker"], ctx.get("redis")) as session:
        yield session


# ---------------------------------------------------------------- crons


def _epoch_key(ctx: dict[str, Any]) -> str:
    prefix = getattr(ctx.get("settings"), "redis_key_prefix", "acorn")
    return f"{prefix}:{EPOCH_KEY}"


async def redispatch_jobs(ctx: dict[str, Any], now: datetime | None = None) -> int:
    """Cron, every 10 s: send outbox rows whose request could not send them; returns how many went out."""
    redis: ArqRedis = ctx["redis"]
    now = now or utcnow()
    async with ctx["sessionmaker"]() as session, session.begin():
        if await redis.set(_epoch_key(ctx), now.isoformat(), nx=True):
            # The key is gone: Redis lost its data (or this is its first use). Jobs sent within the retention
            # window may have vanished with it, so they go out again; arq drops those it still holds.
            lost = await session.execute(
                update(JobOutbox)
                .where(
                    JobOutbox.dispatched_at.is_not(None),
                    or_(JobOutbox.dispatched_at > now - RETENTION, JobOutbox.defer_until > now - RETENTION),
                )
                .values(dispatched_at=None)
                .execution_options(synchronize_session=False)
            )
            count = getattr(lost, "rowcount", 0)
            if count:
                log.warning("job_outbox_redis_data_lost", resending=count)
            due_before = now + timedelta(days=365)  # everything undispatched, even rows written a moment ago
        else:
            due_before = now - REDISPATCH_AFTER
        rows = (
            await session.scalars(
                select(JobOutbox)
                .where(JobOutbox.dispatched_at.is_(None), JobOutbox.created_at < due_before)
                .order_by(JobOutbox.created_at)
                .limit(REDISPATCH_BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        sent = 0
        for row in rows:
            row.attempts += 1
            try:
                await asyncio.wait_for(_send(redis, row), DISPATCH_TIMEOUT)
            except Exception as exc:
                row.last_error = _describe(exc)
                log.warning("job_redispatch_failed", function=row.function, job_id=row.arq_job_id, error=row.last_error)
                break  # Redis is not answering; the next pass tries again
            row.dispatched_at = utcnow()
            row.last_error = None
            sent += 1
    if sent:
        log.info("jobs_redispatched", count=sent)
    return sent


async def purge_dispatched_jobs(ctx: dict[str, Any], now: datetime | None = None) -> int:
    """Cron, hourly: forget rows dispatched more than ``RETENTION`` ago (and due that long ago, if deferred)."""
    now = now or utcnow()
    cutoff = now - RETENTION
    async with ctx["sessionmaker"]() as session, session.begin():
        result = await session.execute(
            delete(JobOutbox)
            .where(
                JobOutbox.dispatched_at.is_not(None),
                JobOutbox.dispatched_at < cutoff,
                or_(JobOutbox.defer_until.is_(None), JobOutbox.defer_until < cutoff),
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))
