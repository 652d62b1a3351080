"""Archived documents are decompressed and parsed off the event loop, and only up to a size."""

from __future__ import annotations

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.core.db import Resources
from acorn_api.core.time import utcnow
from acorn_api.ledger.archive import raw_documents
from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.conftest import Tenant


async def test_a_document_over_the_inline_limit_comes_without_its_payload(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, account: Tenant
) -> None:
    small_limit = settings.model_copy(update={"raw_document_max_inline_bytes": 4096})
    app = create_app(small_limit, resources=Resources(engine=None, sessionmaker=sessionmaker, redis=redis))
    big = b'{"rows": "' + b"x" * 300_000 + b'"}'  # over the threshold that sends compression to a thread
    async with sessionmaker() as session:
        large = await raw_documents.store(session, account.id, big, source="test", fetched_at=utcnow())
        small = await raw_documents.store(session, account.id, b'{"ok": 1}', source="test", fetched_at=utcnow())
        await session.commit()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as api:
        r = await api.get(f"/v1/raw-documents/{large.id}", headers=account.headers())
        assert r.status_code == 200, r.text
        assert r.json()["payload"] is None and r.json()["payload_included"] is False
        assert r.json()["size_bytes"] == len(big) and r.json()["compressed_bytes"] < 10_000
        r = await api.get(f"/v1/raw-documents/{small.id}", headers=account.headers())
        assert r.json()["payload"] == {"ok": 1} and r.json()["payload_included"] is True
