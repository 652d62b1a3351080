"""Jobs are enqueued after the transaction that asked for them has committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

PENDING_JOBS_KEY = "acorn_pending_jobs"


@dataclass(frozen=True)
class PendingJob:
    function: str
    args: tuple[Any, ...]
    job_id: str | None


def enqueue_after_commit(session: AsyncSession, function: str, *args: Any, job_id: str | None = None) -> None:
    """Buffer a job on the session; it is sent once the session's transaction has committed.

    Pass ids, not objects. ``job_id`` makes arq refuse a duplicate while the first is queued or running.
    """
    session.info.setdefault(PENDING_JOBS_KEY, []).append(PendingJob(function, args, job_id))


async def flush_pending_jobs(session: AsyncSession, redis: ArqRedis | None) -> None:
    pending: list[PendingJob] = session.info.pop(PENDING_JOBS_KEY, [])
    if pending and redis is None:
        raise RuntimeError("jobs were requested but this session has no queue to send them to")
    for job in pending:
        assert redis is not None
        await redis.enqueue_job(job.function, *job.args, _job_id=job.job_id)


@asynccontextmanager
async def job_session(ctx: dict[str, Any]) -> AsyncIterator[AsyncSession]:
    """A worker job's one transaction: commits at the end, rolls back on error, then sends its jobs."""
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        await flush_pending_jobs(session, ctx.get("redis"))
