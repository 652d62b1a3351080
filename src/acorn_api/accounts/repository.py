"""Queries for accounts and credentials."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.models import Account, ApiKey
from acorn_api.core.repository import AccountScopedRepository


class AccountRepository:
    async def get(self, session: AsyncSession, account_id: uuid.UUID) -> Account | None:
        return await session.get(Account, account_id)

    def add(self, session: AsyncSession, account: Account) -> Account:
        session.add(account)
        return account


class ApiKeyRepository(AccountScopedRepository[ApiKey]):
    model = ApiKey
    not_found_message = "No such API key."

    async def find_by_prefix_for_authentication(self, session: AsyncSession, prefix: str) -> ApiKey | None:
        """The one lookup that is not account-scoped: it is how the caller's account is found."""
        key: ApiKey | None = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        return key

    async def touch_last_used(self, session: AsyncSession, key_id: uuid.UUID, at: datetime) -> None:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


accounts = AccountRepository()
api_keys = ApiKeyRepository()
