"""Declarative base and the mixins every table is built from."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - read by SQLAlchemy at class creation
        datetime: DateTime(timezone=True),
        Decimal: Numeric(20, 4),
        dict[str, Any]: JSONB,
    }


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    # clock_timestamp(), not now(): rows created in one transaction still get distinct, ordered times,
    # which keeps "newest first" pages exact.
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp(), onupdate=func.clock_timestamp())


class TenantMixin(IdMixin, TimestampMixin):
    """A row that belongs to one account.

    ``UNIQUE (account_id, id)`` lets other tenant tables point here with a foreign key that includes
    ``account_id``, so a row can never reference another account's row and the tables can later be
    distributed by account. Subclasses add constraints through ``__extra_table_args__``.
    """

    __extra_table_args__: tuple[Any, ...] = ()

    @declared_attr
    def account_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("account_id", "id"), *cls.__extra_table_args__)


class AccountKeyedMixin(TimestampMixin):
    """A row of a table built to be distributed: the primary key is ``(account_id, id)``.

    DESIGN.md §5: new tenant tables key on the account first, so a table can be hash-partitioned (or
    distributed on a Citus-style cluster) by ``account_id`` without a rewrite. Every unique constraint
    and foreign key of such a table includes ``account_id``.
    """

    __extra_table_args__: tuple[Any, ...] = ()

    @declared_attr
    def account_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (PrimaryKeyConstraint("account_id", "id"), *cls.__extra_table_args__)


def check_in(column: str, values: tuple[str, ...] | list[str]) -> str:
    """SQL for a ``CHECK (column IN (...))`` over a status or type vocabulary."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def tenant_fk(columns: list[str], table: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    """A foreign key that includes ``account_id``: a row can never point at another account's row.

    ``ondelete="SET NULL"`` would null ``account_id`` as well (every column of the key): a deletion that may
    leave referencing rows nulls the reference itself first (see ``ImportMappingRepository.delete``)."""
    return ForeignKeyConstraint(["account_id", *columns], [f"{table}.account_id", f"{table}.id"], ondelete=ondelete)
