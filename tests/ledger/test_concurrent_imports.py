"""Two imports of overlapping files into one account, loaded at the same time, add each natural key once.

The load inserts without ``ON CONFLICT`` after anti-joining the ledger, under the account's ledger-writer
lock: without the lock the second insert would hit the unique index (and fail) or, worse, both would add the
shared rows. Both must succeed, and the ledger must equal what the same two files give loaded one after the
other.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.ledger import jobs
from acorn_api.ledger.models import Invoice, LedgerEntry, Payment, PaymentLine
from acorn_api.settings import Settings
from tests.conftest import AccountFactory, Tenant
from tests.ledger import files
from tests.ledger.test_crash_recovery import columns

pytestmark = [pytest.mark.committing, pytest.mark.timeout(600)]

INVOICES = 400  # enough rows that the two loads overlap in time


async def ledger(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> dict[str, list[Any]]:
    """Every row the imports wrote, without ids and without which import or file row it came from."""
    out: dict[str, list[Any]] = {}
    async with sessionmaker() as s:
        for model in (LedgerEntry, Payment, PaymentLine, Invoice):
            rows = (await s.execute(select(*columns(model, "source_row")).where(model.account_id == account_id))).all()
            out[model.__tablename__] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


async def upload(client: httpx.AsyncClient, tenant: Tenant, content: bytes) -> str:
    r = await client.post(
        "/v1/imports",
        files={"file": ("remittance.csv", content)},
        data={"report_type": "remittance"},
        headers=tenant.headers(),
    )
    assert r.status_code == 202, r.text
    import_id: str = r.json()["id"]
    return import_id


async def test_concurrent_overlapping_imports_add_each_natural_key_once(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: ArqRedis,
) -> None:
    ctx = {"sessionmaker": committing_sessionmaker, "redis": redis, "settings": settings}
    january = files.remittance(payment="P1", invoices=INVOICES, start=100)
    february = files.remittance(payment="P2", invoices=INVOICES // 2, start=100 + INVOICES)
    first = files.to_csv(january.rows).encode()
    # january's invoice lines again (header row 3) plus february's: half of it overlaps the first file
    second = files.to_csv([january.rows[3], *january.rows[4:], *february.rows[4:]]).encode()

    together = await make_committed_account("Concurrent")
    ids = [await upload(committing_client, together, content) for content in (first, second)]
    statuses = await asyncio.gather(*(jobs.load_import(ctx, str(together.id), i) for i in ids))
    assert statuses == ["succeeded", "succeeded"]

    # the loads serialise on the account's ledger lock, in whichever order they take it: the result is one of
    # the two one-after-the-other results (the overlapping rows read differently in the two files)
    sequential = []
    for order in ((first, second), (second, first)):
        apart = await make_committed_account("Sequential")
        loaded_apart = 0
        for content in order:
            i = await upload(committing_client, apart, content)
            assert await jobs.load_import(ctx, str(apart.id), i) == "succeeded"
            loaded_apart += (await committing_client.get(f"/v1/imports/{i}", headers=apart.headers())).json()[
                "rows_loaded"
            ]
        sequential.append((await ledger(committing_sessionmaker, apart.id), loaded_apart))

    got = await ledger(committing_sessionmaker, together.id)
    matching = [loaded_apart for rows, loaded_apart in sequential if rows == got]
    assert matching, "the concurrent result is neither sequential order's"
    async with committing_sessionmaker() as s:
        keys = select(LedgerEntry.natural_key).where(LedgerEntry.account_id == together.id)
        assert await s.scalar(select(func.count()).select_from(keys.subquery())) == await s.scalar(
            select(func.count(func.distinct(LedgerEntry.natural_key))).where(LedgerEntry.account_id == together.id)
        )
        loaded = []
        for i in ids:
            imp = (await committing_client.get(f"/v1/imports/{i}", headers=together.headers())).json()
            loaded.append(imp["rows_loaded"])
    # every file row that added something was added by exactly one of the two imports, as in that order
    assert sum(loaded) == matching[0]
    assert sum(loaded) in (january.lines + 1 + february.lines, january.lines + february.lines)
    assert len(got["ledger_entries"]) > 0
