"""Real transactions: two jobs racing over one import, and two transitions racing over one case version."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.refunds.jobs import open_refund_cases
from acorn_api.refunds.models import RefundCase
from acorn_api.webhooks.models import Event
from tests.conftest import AccountFactory
from tests.refunds.factories import make_entry, make_import

pytestmark = pytest.mark.committing


async def test_two_jobs_racing_over_one_import_open_each_case_once(
    committing_sessionmaker: async_sessionmaker[AsyncSession], make_committed_account: AccountFactory, redis: ArqRedis
) -> None:
    tenant = await make_committed_account("Race")
    async with committing_sessionmaker() as s:
        imp = await make_import(s, tenant.id)
        for n in range(50):
            await make_entry(s, tenant.id, "shortage_claim", f"-{n + 1}.00", source_import_id=imp.id, commit=False)
        await s.commit()
    ctx = {"sessionmaker": committing_sessionmaker, "redis": redis}

    results = await asyncio.gather(*(open_refund_cases(ctx, str(tenant.id), str(imp.id)) for _ in range(3)))

    assert sorted(r["created"] for r in results) == [0, 0, 50]
    async with committing_sessionmaker() as s:
        cases = await s.scalar(select(func.count()).select_from(RefundCase).where(RefundCase.account_id == tenant.id))
        created = await s.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.account_id == tenant.id, Event.type == "refund_case.created")
        )
    assert (cases, created) == (50, 50)


async def test_of_two_transitions_from_one_version_exactly_one_wins(
    committing_client: httpx.AsyncClient,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    make_committed_account: AccountFactory,
    redis: ArqRedis,
) -> None:
    tenant = await make_committed_account("Versions")
    async with committing_sessionmaker() as s:
        entry = await make_entry(s, tenant.id, "price_claim", "-80.00")
    await open_refund_cases({"sessionmaker": committing_sessionmaker, "redis": redis}, str(tenant.id))
    async with committing_sessionmaker() as s:
        case = await s.scalar(
            select(RefundCase).where(RefundCase.account_id == tenant.id, RefundCase.origin_entry_id == entry.id)
        )
    assert case is not None
    url = f"/v1/refund-cases/{case.id}/transitions"

    async def move(to: str, note: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"to": to, "version": case.version}
        if note:
            body["note"] = note
        return await committing_client.post(url, json=body, headers=tenant.headers())

    responses = await asyncio.gather(move("ready_to_dispute"), move("written_off", "duplicate"))

    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()
    final = (await committing_client.get(f"/v1/refund-cases/{case.id}", headers=tenant.headers())).json()
    assert (final["status"], final["version"]) == (winner["status"], case.version + 1)
    timeline = (await committing_client.get(f"/v1/refund-cases/{case.id}/events", headers=tenant.headers())).json()
    assert [e["kind"] for e in timeline["data"]] == ["created", "status_changed"]
