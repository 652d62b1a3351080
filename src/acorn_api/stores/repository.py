"""Every query on stores, scoped to the caller's account."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.repository import AccountScopedRepository
from acorn_api.stores.models import Store


class StoreRepository(AccountScopedRepository[Store]):
    model = Store
    not_found_message = "No such store."

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        status: str | None = None,
        region: str | None = None,
        marketplace: str | None = None,
        vendor_code: str | None = None,
        code: str | None = None,
    ) -> Select[Store]:
        stmt = self.select_matching(account_id, status=status, region=region, marketplace=marketplace, code=code)
        if vendor_code is not None:
            stmt = stmt.where(Store.vendor_codes.contains([vendor_code]))
        return stmt

    async def first_with_vendor_code(
        self, session: AsyncSession, account_id: uuid.UUID, vendor_code: str
    ) -> Store | None:
        """The (oldest) store that has this vendor code, if any."""
        row: Store | None = await session.scalar(
            self.select(account_id)
            .where(Store.vendor_codes.contains([vendor_code]))
            .order_by(Store.created_at)
            .limit(1)
        )
        return row

    async def code_taken(
        self, session: AsyncSession, account_id: uuid.UUID, code: str, *, except_id: uuid.UUID | None = None
    ) -> bool:
        stmt = self.select(account_id).where(Store.code == code)
        if except_id is not None:
            stmt = stmt.where(Store.id != except_id)
        return await session.scalar(stmt.limit(1)) is not None

    async def try_delete(self, session: AsyncSession, account_id: uuid.UUID, store_id: uuid.UUID) -> bool:
        """Delete the row unless another table still refers to it (a foreign key says no)."""
        try:
            async with session.begin_nested():
                await session.execute(delete(Store).where(Store.account_id == account_id, Store.id == store_id))
        except IntegrityError:
            return False
        return True


stores = StoreRepository()
