from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture
def job_ctx(sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis) -> dict[str, Any]:
    """What the arq worker gives a job: the test's sessionmaker (inside the test transaction) and the queue."""
    return {"sessionmaker": sessionmaker, "redis": redis}


CaseMaker = Any


@pytest.fixture
def make_case(session: AsyncSession, job_ctx: dict[str, Any]) -> CaseMaker:
    """A deduction entry and its case, through the real job; returns the case as the API shows it."""
    import uuid

    from sqlalchemy import select

    from acorn_api.refunds.jobs import open_refund_cases
    from acorn_api.refunds.models import RefundCase
    from tests.refunds.factories import make_entry

    async def factory(
        account_id: uuid.UUID, entry_type: str = "shortage_claim", amount: str = "-120.00", **fields: Any
    ):
        entry = await make_entry(session, account_id, entry_type, amount, **fields)
        await open_refund_cases(job_ctx, str(account_id))
        case = await session.scalar(
            select(RefundCase).where(RefundCase.account_id == account_id, RefundCase.origin_entry_id == entry.id)
        )
        assert case is not None
        return case

    return factory
