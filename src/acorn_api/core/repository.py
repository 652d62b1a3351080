"""The one mechanism that scopes every query to an account."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, bindparam, inspect, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

from acorn_api.core.errors import NotFound
from acorn_api.core.models import AccountKeyedMixin, TenantMixin
from acorn_api.core.pagination import PageParams, Slice, keyset_page

M = TypeVar("M", bound=TenantMixin | AccountKeyedMixin)

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RowStatement:
    """A read statement compiled once to asyncpg's SQL, its columns labelled with the model's attribute names."""

    statement: Select[Any]
    compiled: SQLCompiler
    sql: str
    # Whether asyncpg takes every parameter as it is (no SQLAlchemy bind processing), so the SQL can run directly.
    direct: bool

    @classmethod
    def of(cls, statement: Select[Any]) -> RowStatement:
        compiled = statement.compile(dialect=_DIALECT)
        direct = all(
            bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) is None for bind in compiled.binds.values()
        )
        return cls(statement, compiled, str(compiled), direct)

    async def first(self, session: AsyncSession, params: dict[str, Any]) -> Mapping[str, Any] | None:
        """The first row as a mapping of attribute names, or None.

        In an autocommit session (every read-only request) the compiled SQL runs straight on the session's asyncpg
        connection: no ORM loading, no per-execution statement compilation or result processing — on a by-id read
        that is most of SQLAlchemy's cost. Inside a transaction (writes, tests) it runs through the session, so it
        sees the transaction's own writes.
        """
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        if self.direct and getattr(raw.dbapi_connection, "autocommit", False):
            values = self.compiled.construct_params(params) or {}
            positional = [values[name] for name in self.compiled.positiontup or ()]
            record = await raw.driver_connection.fetchrow(self.sql, *positional)  # type: ignore[union-attr]
            return None if record is None else dict(record.items())
        row: Mapping[str, Any] | None = (await session.execute(self.statement, params)).mappings().first()
        return row


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

    def _by_id_row(self) -> RowStatement:
        """:meth:`_by_id` selecting the mapped columns (labelled by attribute name) rather than the entity."""
        found: RowStatement | None = type(self).__dict__.get("_by_id_row_statement")
        if found is None:
            columns = [prop.columns[0].label(prop.key) for prop in inspect(self.model).column_attrs]
            found = RowStatement.of(self._by_id().with_only_columns(*columns))
            type(self)._by_id_row_statement = found  # type: ignore[attr-defined]
        return found

    async def get_row(self, session: AsyncSession, account_id: uuid.UUID, row_id: uuid.UUID) -> Mapping[str, Any]:
        """The row for a read-only response: a mapping of attribute name to value (no ORM entity), or 404.

        Same statement as :meth:`get` (so the same account scoping); for GET routes that only serialise the row.
        """
        row = await self._by_id_row().first(session, {"account_id": account_id, "row_id": row_id})
        if row is None:
            raise NotFound(self.not_found_message)
        return row

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
