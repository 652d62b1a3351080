"""Alembic environment: async engine, the app's metadata, URL from ACORN_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from acorn_api.models_registry import metadata
from acorn_api.settings import Settings, to_async_database_url

config = context.config
target_metadata = metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    settings = Settings()
    if not settings.database_url:
        raise RuntimeError("set ACORN_DATABASE_URL to run migrations")
    return to_async_database_url(settings.database_url)


def is_partition(name: str | None) -> bool:
    """Partitions of a partitioned table (``ledger_entries_p00`` …) are made by migrations, not models."""
    if name is None:
        return False
    parent, _, suffix = name.rpartition("_p")
    return parent in target_metadata.tables and suffix.isdigit()


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and is_partition(name))


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # PostgreSQL adds one internal foreign key per partition of a partitioned table that is referenced
    if type_ == "foreign_key_constraint" and reflected and isinstance(obj, ForeignKeyConstraint):
        return not is_partition(obj.referred_table.name)
    return True


def run_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
