from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture
def job_ctx(sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis) -> dict[str, Any]:
    """What the arq worker gives a job: the test's sessionmaker (inside the test transaction) and the queue."""
    return {"sessionmaker": sessionmaker, "redis": redis}
