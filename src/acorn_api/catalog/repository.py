"""Every query on items, scoped to the caller's account."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Select, delete, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.catalog.models import Item
from acorn_api.core.repository import AccountScopedRepository


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ItemRepository(AccountScopedRepository[Item]):
    model = Item
    not_found_message = "No such item."

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        asin: str | None = None,
        vendor_sku: str | None = None,
        status: str | None = None,
        q: str | None = None,
    ) -> Select[Item]:
        stmt = self.select_matching(account_id, asin=asin, vendor_sku=vendor_sku, status=status)
        if q is not None:
            pattern = _like_pattern(q)
            stmt = stmt.where(or_(Item.title.ilike(pattern, escape="\\"), Item.brand.ilike(pattern, escape="\\")))
        return stmt

    async def taken(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        field: str,
        value: str,
        *,
        except_id: uuid.UUID | None = None,
    ) -> bool:
        column = Item.asin if field == "asin" else Item.vendor_sku
        stmt = self.select(account_id).where(column == value)
        if except_id is not None:
            stmt = stmt.where(Item.id != except_id)
        return await session.scalar(stmt.limit(1)) is not None

    async def by_asin(self, session: AsyncSession, account_id: uuid.UUID, asin: str) -> Item | None:
        item: Item | None = await session.scalar(self.select(account_id).where(Item.asin == asin))
        return item

    async def by_keys(
        self, session: AsyncSession, account_id: uuid.UUID, *, asins: Iterable[str], vendor_skus: Iterable[str]
    ) -> list[Item]:
        """Items matching any of the ASINs or vendor SKUs (one query, for bulk imports)."""
        asin_list, sku_list = sorted(set(asins)), sorted(set(vendor_skus))
        if not asin_list and not sku_list:
            return []
        stmt = self.select(account_id).where(or_(Item.asin.in_(asin_list), Item.vendor_sku.in_(sku_list)))
        return list((await session.scalars(stmt)).all())

    async def try_delete(self, session: AsyncSession, account_id: uuid.UUID, item_id: uuid.UUID) -> bool:
        """Delete the row unless another table still refers to it (a foreign key says no)."""
        try:
            async with session.begin_nested():
                await session.execute(delete(Item).where(Item.account_id == account_id, Item.id == item_id))
        except IntegrityError:
            return False
        return True


items = ItemRepository()
