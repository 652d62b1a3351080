"""A database or Redis outage answers 503 problem+json with Retry-After, and the API recovers by itself.

PostgreSQL here is a private embedded server that the test stops and starts; Redis a private port with nothing
on it. The shared servers are never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import Redis

from acorn_api.core.db import Resources, make_engine, make_sessionmaker
from acorn_api.core.errors import unavailable_dependency
from acorn_api.main import create_app
from acorn_api.settings import Settings, to_async_database_url
from tests.conftest import Tenant, _make_account
from tests.private_servers import PrivatePostgres, free_port, private_postgres
from tests.stores.factories import store_body

pytestmark = [pytest.mark.committing, pytest.mark.slow]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


def assert_unavailable(r: httpx.Response, dependency: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "5"
    body = r.json()
    assert body["type"] == "https://acorn.dev/problems/unavailable"
    assert dependency in body["detail"]
    assert body["request_id"]


async def test_a_database_outage_answers_503_with_retry_after_and_recovers(
    postgres: PrivatePostgres, settings: Settings, redis: ArqRedis
) -> None:
    private_settings = settings.model_copy(update={"database_url": to_async_database_url(postgres.url)})
    engine = make_engine(private_settings, pool_size=2, max_overflow=0, pool_timeout=2)
    sessionmaker = make_sessionmaker(engine)
    app = create_app(private_settings, resources=Resources(engine=engine, sessionmaker=sessionmaker, redis=redis))
    tenant: Tenant = await _make_account(sessionmaker, private_settings, "Outage Vendor", ())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
            assert (await api.get("/v1/stores", headers=tenant.headers())).status_code == 200

            postgres.stop()
            try:
                assert_unavailable(await api.get("/v1/stores", headers=tenant.headers()), "database")
                store = store_body(code=f"S-{uuid.uuid4().hex[:6].upper()}")
                assert_unavailable(await api.post("/v1/stores", json=store, headers=tenant.headers()), "database")
            finally:
                postgres.start()

            r = await api.get("/v1/stores", headers=tenant.headers())
            assert r.status_code == 200, "the pool reconnects by itself once PostgreSQL is back"
    finally:
        await engine.dispose()


@pytest.fixture
async def app_with_redis_route(app: FastAPI) -> AsyncIterator[FastAPI]:
    dead = Redis(port=free_port(), socket_connect_timeout=0.5)

    async def counter() -> dict[str, int]:
        return {"hits": int(await dead.incr("hits"))}

    async def broken() -> dict[str, int]:
        raise RuntimeError("a bug, not an outage")

    app.add_api_route("/_test/redis-counter", counter)
    app.add_api_route("/_test/bug", broken)
    yield app
    await dead.aclose()


async def test_a_redis_outage_answers_503_and_a_bug_still_answers_500(app_with_redis_route: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app_with_redis_route, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        assert_unavailable(await api.get("/_test/redis-counter"), "Redis")
        bug = await api.get("/_test/bug")
    assert bug.status_code == 500
    assert bug.json()["type"] == "https://acorn.dev/problems/internal"
    assert "retry-after" not in bug.headers


def test_a_server_starting_up_or_shutting_down_is_an_outage() -> None:
    import asyncpg
    import sqlalchemy.exc

    for cause in (asyncpg.CannotConnectNowError("the database system is starting up"), asyncpg.AdminShutdownError()):
        wrapped = sqlalchemy.exc.DBAPIError("SELECT 1", None, cause)  # what SQLAlchemy's asyncpg dialect raises
        wrapped.__cause__ = cause
        assert unavailable_dependency(wrapped) == "database", cause
    unique = asyncpg.UniqueViolationError("duplicate key")
    assert unavailable_dependency(sqlalchemy.exc.DBAPIError("INSERT", None, unique)) is None, "a request's own error"


def test_only_connection_failures_count_as_outages() -> None:
    assert unavailable_dependency(FileNotFoundError(2, "no such file")) is None, "not raised by a driver"
    assert unavailable_dependency(ValueError("bad input")) is None
    assert unavailable_dependency(ConnectionRefusedError(111, "refused")) == "database"
