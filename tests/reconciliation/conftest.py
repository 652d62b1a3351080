from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Tenant
from tests.reconciliation.factories import Ledger


@pytest.fixture
async def ledger(session: AsyncSession, account: Tenant) -> Ledger:
    return Ledger(session, account.id)


@pytest.fixture
async def other_ledger(session: AsyncSession, other_account: Tenant) -> Ledger:
    return Ledger(session, other_account.id)
