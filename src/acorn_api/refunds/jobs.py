"""arq jobs of refund cases: open cases after an import, a nightly safety net, and the daily deadline run."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from acorn_api.core.jobs import enqueue_after_commit, job_session
from acorn_api.core.time import utcnow
from acorn_api.refunds import repository as repo
from acorn_api.refunds import service


async def open_refund_cases(ctx: dict[str, Any], account_id: str, import_id: str | None = None) -> dict[str, int]:
    """One case per deduction of the account (or of one import); idempotent, safe when two runs race."""
    async with job_session(ctx) as session:
        result = await service.open_cases(
            session, uuid.UUID(account_id), import_id=uuid.UUID(import_id) if import_id else None
        )
    return asdict(result)


async def open_refund_cases_nightly(ctx: dict[str, Any]) -> int:
    """Safety net: an account whose deductions lack a case (a lost job) gets a full run."""
    async with job_session(ctx) as session:
        accounts = await repo.accounts_with_uncased_deductions(session)
        day = utcnow().date().isoformat()
        for account_id in accounts:
            enqueue_after_commit(
                session, "open_refund_cases", str(account_id), None, job_id=f"open_refund_cases:{account_id}:{day}"
            )
    return len(accounts)


async def refund_case_deadlines(ctx: dict[str, Any]) -> dict[str, int]:
    """Daily: deadline_approaching events at 7 and 2 days, missed deadlines flagged, priorities re-scored."""
    async with job_session(ctx) as session:
        run = await service.run_deadlines(session)
    return asdict(run)
