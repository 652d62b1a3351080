"""Run alembic from code (the CLI, `acorn-api dev`, tests) with the app's settings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from acorn_api.settings import to_async_database_url


def project_root() -> Path:
    """The folder holding ``alembic.ini`` and ``migrations/``: the checkout, or the image's /app."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "migrations" / "env.py").exists():
            return candidate
    raise RuntimeError("cannot find the migrations folder; run from the project folder")


def alembic_config(database_url: str) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.set_main_option("sqlalchemy.url", to_async_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def execute_as_admin(admin_url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on its own connection, outside any transaction."""
    import asyncpg

    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(admin_url: str, *, prefix: str, migrate: bool = True) -> Iterator[str]:
    """A new database (migrated to head unless told otherwise) for tests and benchmarks; dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(execute_as_admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        asyncio.run(execute_as_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
