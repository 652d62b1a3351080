"""Engine, sessions and the one place a request commits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
import structlog
from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from acorn_api.core.jobs import flush_pending_jobs
from acorn_api.settings import Settings

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AFTER_COMMIT_KEY = "acorn_after_commit"

log = structlog.get_logger(__name__)


def after_commit(session: AsyncSession, effect: Callable[[], Awaitable[None]]) -> None:
    """Run ``effect`` once the request's transaction has committed and given its connection back.

    For best-effort bookkeeping that must not hold a lock for the request nor ask the pool for a second
    connection while the request holds one (``last_used_at``). A failing effect is logged, never raised:
    the request's own work has committed. Work that must not be lost goes through the job outbox instead.
    """
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(effect)


async def run_after_commit(session: AsyncSession) -> None:
    for effect in session.info.pop(AFTER_COMMIT_KEY, []):
        try:
            await effect()
        except Exception as exc:  # best effort by contract
            log.warning("after_commit_failed", error_type=type(exc).__name__, error=str(exc)[:200])


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Checkout check without a round trip: asyncpg knows when the server closed the socket.

    Replaces ``pool_pre_ping`` (a ``SELECT 1`` per checkout): a connection the server dropped (restart,
    idle timeout) is discarded and the pool hands out another one, transparently to the request.
    """
    raw = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(raw, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("connection closed by the server")


def make_engine(
    settings: Settings, database_url: str | None = None, *, command_timeout: float | None = None, **overrides: Any
) -> AsyncEngine:
    """The engine of one process. ``command_timeout`` (the API passes ``database_command_timeout``) bounds every
    statement: asyncpg cancels it and raises ``TimeoutError``, which the API answers with a 503."""
    url = database_url or settings.database_url
    if not url:
        raise RuntimeError("no database configured: set ACORN_DATABASE_URL or use `acorn-api dev`")
    options: dict[str, Any] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        # No pre-ping round trip per checkout: see _refuse_closed_connection; connections are renewed hourly.
        "pool_recycle": 3600,
        # JSONB columns are decoded per row on every list: orjson instead of the standard library's json.
        "json_deserializer": orjson.loads,
        "connect_args": {
            "server_settings": {"application_name": "acorn-api", "timezone": "UTC"},
            "timeout": settings.database_connect_timeout,  # an unreachable server is a quick 503, not a 60 s hang
            "command_timeout": command_timeout,
        },
    }
    options.update(overrides)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def make_sessionmaker(bind: Any, **options: Any) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=bind, expire_on_commit=False, **options)


@dataclass
class Resources:
    """What a running app or worker holds: the database, the queue and shared clients."""

    engine: AsyncEngine | None
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    extras: dict[str, Any] = field(default_factory=dict)
    _autocommit: async_sessionmaker[AsyncSession] | None = field(default=None, init=False, repr=False)
    _autocommit_checked: bool = field(default=False, init=False, repr=False)

    def autocommit_sessionmaker(self) -> async_sessionmaker[AsyncSession] | None:
        """Sessions whose statements commit on their own (no ``BEGIN``/``COMMIT`` round trips), or None when
        the sessions are bound to a connection rather than an engine (tests in an outer transaction)."""
        if not self._autocommit_checked:
            options = dict(self.sessionmaker.kw)
            bind = options.pop("bind", None)
            if isinstance(bind, AsyncEngine):
                self._autocommit = async_sessionmaker(
                    bind=bind.execution_options(isolation_level="AUTOCOMMIT"), **options
                )
            self._autocommit_checked = True
        return self._autocommit

    def read_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for read-only requests: autocommit when possible. Each statement sees a fresh snapshot, as
        it does under READ COMMITTED anyway."""
        return self.autocommit_sessionmaker() or self.sessionmaker


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit once when the route succeeded, else roll back.

    Runs with ``scope="function"`` so the commit happens before the response is sent: a client never
    sees a success for a write that did not commit. Jobs buffered during the request are enqueued
    only after the commit. Read-only methods get an autocommit session: no transaction to open or commit.
    """
    resources: Resources = request.app.state.resources
    if request.method in READ_ONLY_METHODS:
        async with resources.read_sessionmaker()() as session:
            yield session
            await flush_pending_jobs(session, resources.redis)  # normally none: reads enqueue nothing
        return
    async with resources.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        await flush_pending_jobs(session, resources.redis)
    await run_after_commit(session)


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
