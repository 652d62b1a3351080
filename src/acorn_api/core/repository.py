"""The one mechanism that scopes every query to an account."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.errors import NotFound
from acorn_api.core.models import AccountKeyedMixin, TenantMixin
from acorn_api.core.pagination import PageParams, Slice, keyset_page

M = TypeVar("M", bound=TenantMixin | AccountKeyedMixin)


class AccountScopedRepository(Generic[M]):
    """Every statement starts from :meth:`select`, which filters on the caller's account.

    Another account's row is indistinguishable from a missing one: both are ``NotFound`` (404).
    """

    model: ClassVar[type[Any]]
    not_found_message: ClassVar[str] = "No such resource."

    def select(self, account_id: uuid.UUID) -> Select[M]:
        return select(self.model).where(self.model.account_id == account_id)

    def select_matching(self, account_id: uuid.UUID, **equal_to: Any) -> Select[M]:
        """:meth:`select` narrowed by ``column == value`` for each filter that was given (not ``None``)."""
        stmt = self.select(account_id)
        for column, value in equal_to.items():
            if value is not None:
                stmt = stmt.where(getattr(self.model, column) == value)
        return stmt

    def _by_id(self) -> Select[M]:
        """``SELECT … WHERE account_id = :account_id AND id = :row_id``, built once per repository class: the
        hot path of every detail route skips statement construction and cache-key generation."""
        stmt: Select[M] | None = type(self).__dict__.get("_by_id_statement")
        if stmt is None:
            # From self.select, so that a repository narrowing it (e.g. hiding soft-deleted rows) stays narrowed.
            stmt = self.select(bindparam("account_id")).where(self.model.id == bindparam("row_id"))  # type: ignore[arg-type]
            type(self)._by_id_statement = stmt  # type: ignore[attr-defined]
        return stmt

    async def find(self, session: AsyncSession, account_id: uuid.UUID, row_id: uuid.UUID) -> M | None:
        row: M | None = await session.scalar(self._by_id(), {"account_id": account_id, "row_id": row_id})
        return row

    async def get(self, session: AsyncSession, account_id: uuid.UUID, row_id: uuid.UUID) -> M:
        row = await self.find(session, account_id, row_id)
        if row is None:
            raise NotFound(self.not_found_message)
        return row

    async def get_for_update(self, session: AsyncSession, account_id: uuid.UUID, row_id: uuid.UUID) -> M:
        row: M | None = await session.scalar(self.select(account_id).where(self.model.id == row_id).with_for_update())
        if row is None:
            raise NotFound(self.not_found_message)
        return row

    async def page(self, session: AsyncSession, stmt: Select[M], params: PageParams) -> Slice[M]:
        return await keyset_page(session, stmt, params, created_at=self.model.created_at, id_=self.model.id)

    def add(self, session: AsyncSession, account_id: uuid.UUID, row: M) -> M:
        row.account_id = account_id
        session.add(row)
        return row
