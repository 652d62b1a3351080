"""Refund jobs are registered with the worker; the nightly run enqueues accounts with uncased deductions."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.time import utcnow
from acorn_api.refunds.jobs import open_refund_cases, open_refund_cases_nightly
from acorn_api.refunds.repository import accounts_with_uncased_deductions
from acorn_api.worker import CRON_JOBS, FUNCTIONS
from tests.conftest import Tenant
from tests.refunds.factories import make_entry


def test_the_worker_knows_the_refund_jobs() -> None:
    names = {getattr(f, "__name__", "") for f in FUNCTIONS}
    assert {"open_refund_cases", "open_refund_cases_nightly", "refund_case_deadlines"} <= names
    crons = {c.name for c in CRON_JOBS}
    assert {"cron:open_refund_cases_nightly", "cron:refund_case_deadlines"} <= crons


async def test_the_nightly_run_enqueues_accounts_whose_deductions_lack_a_case(
    session: AsyncSession, account: Tenant, job_ctx: dict[str, Any], redis: ArqRedis
) -> None:
    await make_entry(session, account.id, "coop", "-10.00")
    assert await open_refund_cases_nightly(job_ctx) >= 1
    job_id = f"open_refund_cases:{account.id}:{utcnow().date().isoformat()}"
    job = Job(job_id, redis, _queue_name=redis.default_queue_name)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None and info.function == "open_refund_cases" and info.args == (str(account.id), None)
    await redis.delete(f"arq:job:{job_id}")
    await redis.zrem(redis.default_queue_name, job_id)

    await open_refund_cases(job_ctx, str(account.id))
    assert account.id not in await accounts_with_uncased_deductions(session)
