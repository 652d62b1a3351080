"""Fixtures for imports: upload a file through the API, then run the import job as a worker would."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.ledger import jobs
from acorn_api.settings import Settings
from tests.conftest import Tenant

Upload = Callable[..., Awaitable[httpx.Response]]
RunImport = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def job_ctx(sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, settings: Settings) -> dict[str, Any]:
    return {"sessionmaker": sessionmaker, "redis": redis, "settings": settings}


@pytest.fixture
def upload(client: httpx.AsyncClient, account: Tenant) -> Upload:
    async def send(
        content: bytes,
        report_type: str,
        *,
        filename: str = "report.csv",
        tenant: Tenant | None = None,
        **form: Any,
    ) -> httpx.Response:
        data = {
            "report_type": report_type,
            **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in form.items()},
        }
        return await client.post(
            "/v1/imports",
            files={"file": (filename, content)},
            data=data,
            headers=(tenant or account).headers(),
        )

    return send


@pytest.fixture
def run_import(client: httpx.AsyncClient, account: Tenant, upload: Upload, job_ctx: dict[str, Any]) -> RunImport:
    """Upload, run the job, and return the import as the API shows it afterwards."""

    async def go(content: bytes, report_type: str, *, tenant: Tenant | None = None, **form: Any) -> dict[str, Any]:
        tenant = tenant or account
        r = await upload(content, report_type, tenant=tenant, **form)
        assert r.status_code in (200, 202), r.text
        body = r.json()
        if r.status_code == 202:
            await jobs.load_import(job_ctx, str(tenant.id), body["id"])
        got = await client.get(f"/v1/imports/{body['id']}", headers=tenant.headers())
        assert got.status_code == 200
        result: dict[str, Any] = got.json()
        return result

    return go


async def all_entries(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/ledger/entries", params=q, headers=tenant.headers())
        assert r.status_code == 200, r.text
        out += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


def new_id() -> str:
    return str(uuid.uuid4())
