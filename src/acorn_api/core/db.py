"""Engine, sessions and the one place a request commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from acorn_api.core.jobs import flush_pending_jobs
from acorn_api.settings import Settings


def make_engine(settings: Settings, database_url: str | None = None, **overrides: Any) -> AsyncEngine:
    url = database_url or settings.database_url
    if not url:
        raise RuntimeError("no database configured: set ACORN_DATABASE_URL or use `acorn-api dev`")
    options: dict[str, Any] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_pre_ping": True,
        "connect_args": {
            "server_settings": {"application_name": "acorn-api", "timezone": "UTC"},
            "timeout": settings.database_connect_timeout,  # an unreachable server is a quick 503, not a 60 s hang
        },
    }
    options.update(overrides)
    return create_async_engine(url, **options)


def make_sessionmaker(bind: Any, **options: Any) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=bind, expire_on_commit=False, **options)


@dataclass
class Resources:
    """What a running app or worker holds: the database, the queue and shared clients."""

    engine: AsyncEngine | None
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    extras: dict[str, Any] = field(default_factory=dict)


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit once when the route succeeded, else roll back.

    Runs with ``scope="function"`` so the commit happens before the response is sent: a client never
    sees a success for a write that did not commit. Jobs buffered during the request are enqueued
    only after the commit.
    """
    resources = get_resources(request)
    async with resources.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        await flush_pending_jobs(session, resources.redis)


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
