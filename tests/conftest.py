"""Test fixtures: real PostgreSQL and Redis, one throw-away database per test session.

Servers: ``ACORN_TEST_DATABASE_URL`` / ``ACORN_TEST_REDIS_URL`` when set (CI points them at the machine's
PostgreSQL and Redis); otherwise embedded PostgreSQL and Valkey started once for the session. Each test
runs inside a transaction that is rolled back (the app's commits become savepoints); tests marked
``committing`` use the real engine and isolate themselves with fresh accounts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from acorn_api.accounts.scopes import Role
from acorn_api.accounts.service import create_account, issue_api_key
from acorn_api.core.db import Resources, make_engine, make_sessionmaker
from acorn_api.main import create_app
from acorn_api.migrate import scratch_database
from acorn_api.settings import Settings, to_async_database_url


@dataclass(frozen=True)
class ServerUrls:
    admin_database_url: str  # a database we may CREATE DATABASE from
    redis_url: str


@pytest.fixture(scope="session")
def server_urls() -> Iterator[ServerUrls]:
    database_url = os.environ.get("ACORN_TEST_DATABASE_URL")
    redis_url = os.environ.get("ACORN_TEST_REDIS_URL")
    if database_url and redis_url:
        yield ServerUrls(database_url, redis_url)
        return
    from acorn_api.embedded import embedded_servers

    with (
        tempfile.TemporaryDirectory(prefix="acorn-test-") as root,
        embedded_servers(Path(root), keep_data=False) as urls,
    ):
        yield ServerUrls(database_url or urls.database_url, redis_url or urls.redis_url)


def fresh_database(admin_url: str, *, migrate: bool = True) -> contextlib.AbstractContextManager[str]:
    """A new, empty (or migrated) database for the duration of the block; dropped afterwards."""
    return scratch_database(admin_url, prefix="acorn_test", migrate=migrate)


@pytest.fixture(scope="session")
def database_url(server_urls: ServerUrls) -> Iterator[str]:
    with fresh_database(server_urls.admin_database_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(server_urls: ServerUrls) -> str:
    return server_urls.redis_url


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    run = secrets.token_hex(4)
    return Settings(
        environment="test",
        # the SP-API simulator runs on 127.0.0.1 in the tests; the operator allow-list names it, as
        # `acorn-api dev` does for its own simulator (without it, only Amazon's hosts are accepted)
        spapi_allowed_hosts=["127.0.0.1"],
        database_url=database_url,
        redis_url=redis_url,
        arq_queue_name=f"acorn-test-{run}:queue",
        redis_key_prefix=f"acorn-test-{run}",
        log_json=False,
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings, pool_size=5, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    assert settings.redis_url
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.arq_queue_name)
    yield pool
    keys = [k async for k in pool.scan_iter(match=f"{settings.redis_key_prefix}*")]
    keys += [k async for k in pool.scan_iter(match=f"{settings.arq_queue_name}*")]
    if keys:
        await pool.delete(*keys)
    await pool.aclose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection in an outer transaction that is rolled back after the test."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(connection, join_transaction_mode="create_savepoint")


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as s:
        yield s


@pytest.fixture
def app(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis) -> FastAPI:
    return create_app(settings, resources=Resources(engine=None, sessionmaker=sessionmaker, redis=redis))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class Tenant:
    id: uuid.UUID
    admin_key: str
    keys: dict[str, str]

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


AccountFactory = Callable[..., Awaitable[Tenant]]


async def _make_account(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, name: str, roles: tuple[Role, ...]
) -> Tenant:
    async with sessionmaker() as s:
        created = await create_account(s, settings, name=name)
        keys: dict[str, str] = {}
        for role in roles:
            _, secret = await issue_api_key(
                s,
                settings,
                created.account.id,
                name=f"{role.value} key",
                role=role,
                issued_to=f"{role.value} of {name}",
            )
            keys[role.value] = secret
        await s.commit()
    return Tenant(id=created.account.id, admin_key=created.secret, keys=keys)


@pytest.fixture
def make_account(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> AccountFactory:
    async def factory(name: str = "Test Vendor", roles: tuple[Role, ...] = tuple(Role)) -> Tenant:
        return await _make_account(sessionmaker, settings, name, roles)

    return factory


@pytest.fixture
async def account(make_account: AccountFactory) -> Tenant:
    return await make_account("Account A")


@pytest.fixture
async def other_account(make_account: AccountFactory) -> Tenant:
    return await make_account("Account B")


# --- committing tests: the real engine, real transactions --------------------------------------------


@pytest.fixture
def committing_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
def committing_app(settings: Settings, engine: AsyncEngine, redis: ArqRedis) -> FastAPI:
    return create_app(settings, resources=Resources(engine=None, sessionmaker=make_sessionmaker(engine), redis=redis))


@pytest.fixture
async def committing_client(committing_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=committing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def make_committed_account(
    committing_sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AccountFactory:
    async def factory(name: str = "Committed Vendor", roles: tuple[Role, ...] = tuple(Role)) -> Tenant:
        return await _make_account(committing_sessionmaker, settings, name, roles)

    return factory


def async_database_url(url: str) -> str:
    return to_async_database_url(url)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "committing_client" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("committing"):
            item.add_marker(pytest.mark.committing)
