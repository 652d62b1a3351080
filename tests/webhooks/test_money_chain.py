"""The money chain end to end, as a user meets it: a Vendor Central remittance goes in through the API, a real
arq worker drains the queue, and the ledger, the refund cases, the reconciliation and the signed webhooks all
agree with the file. Issues 8-11 each test their own link; this test checks the links hold together."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.core.jobs import JobOutbox
from acorn_api.ledger.models import DEDUCTION_TYPES
from acorn_api.settings import Settings
from acorn_api.webhooks import verify
from acorn_api.worker import worker_settings
from tests.conftest import AccountFactory, Tenant
from tests.ledger import files
from tests.webhooks.conftest import Receiver

pytestmark = [pytest.mark.committing, pytest.mark.slow]


async def drain(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], account: Tenant) -> None:
    """Run a real worker in burst mode until neither the queue nor the account's outbox holds a job."""
    ws = worker_settings(settings)
    for _ in range(10):
        worker = Worker(
            functions=ws.functions,
            on_startup=ws.on_startup,
            on_shutdown=ws.on_shutdown,
            redis_settings=ws.redis_settings,
            queue_name=ws.queue_name,
            ctx=dict(ws.ctx),
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
        )
        try:
            await worker.main()
        finally:
            await worker.close()
        async with sessionmaker() as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(JobOutbox)
                .where(JobOutbox.account_id == account.id, JobOutbox.dispatched_at.is_(None))
            )
        if not waiting:
            return
    raise AssertionError("the queue did not drain")


async def every_page(api: httpx.AsyncClient, path: str, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        r = await api.get(path, params=query, headers=tenant.headers())
        assert r.status_code == 200, r.text
        found += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return found


async def test_a_remittance_becomes_ledger_cases_balances_and_signed_events(
    committing_client: httpx.AsyncClient,
    make_committed_account: AccountFactory,
    settings: Settings,
    redis: ArqRedis,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    receiver: Receiver,
) -> None:
    await redis.delete(settings.arq_queue_name)  # jobs other tests left for servers that are gone
    api, user = committing_client, await make_committed_account("Money Chain Vendor")

    # an ERP subscribes to everything
    r = await api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "event_types": "*", "description": "ERP"},
        headers=user.headers(),
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]

    # the finance user uploads the remittance Vendor Central gave them
    remittance = files.remittance(invoices=6)
    r = await api.post(
        "/v1/imports",
        files={"file": ("remittance.csv", files.to_csv(remittance.rows).encode())},
        data={"report_type": "remittance"},
        headers=user.headers(),
    )
    assert r.status_code == 202, r.text
    import_id = r.json()["id"]

    await drain(settings, committing_sessionmaker, user)

    # 1. the import loaded, and the ledger holds the file's money to the cent
    imported = (await api.get(f"/v1/imports/{import_id}", headers=user.headers())).json()
    assert imported["status"] == "succeeded", imported
    assert imported["rows_rejected"] == 0
    entries = await every_page(api, "/v1/ledger/entries", user)
    assert {e["source_import_id"] for e in entries} == {import_id}
    deductions = [e for e in entries if e["entry_type"] in {str(t) for t in DEDUCTION_TYPES}]
    assert deductions, "the remittance carries deductions"

    # 2. every deduction has exactly one refund case, with a deadline
    cases = await every_page(api, "/v1/refund-cases", user)
    details = [(await api.get(f"/v1/refund-cases/{c['id']}", headers=user.headers())).json() for c in cases]
    origins = [d["ledger_entry_ids"][0] for d in details]
    # a provision is held back and released, not disputed: it has no dispute window
    assert all(d["dispute_deadline"] for d in details if d["type"] not in ("provision", "other"))
    assert sorted(origins) == sorted(e["id"] for e in deductions)
    assert sum((Decimal(c["amount"]) for c in cases), Decimal(0)) == -sum(
        (Decimal(e["amount"]) for e in deductions), Decimal(0)
    )
    shortage = next(c for c in cases if c["type"] == "shortage")
    assert Decimal(shortage["recovered_amount"]) > 0, "the SCR in the same file recovered against its SC case"

    # 3. reconciliation matched every invoice of the file, and the money adds up per invoice
    balances = await every_page(api, "/v1/reconciliation/invoices", user)
    assert balances
    for b in balances:
        invoiced, paid, deducted = (Decimal(b[k]["amount"]) for k in ("invoiced", "paid", "deducted"))
        reversed_, written_off = Decimal(b["reversed"]["amount"]), Decimal(b["written_off"]["amount"])
        assert invoiced - paid - deducted + reversed_ - written_off == Decimal(b["open_balance"]["amount"]), b

    # 4. the ERP received signed events for what happened, each verifiable with its secret
    types = {e["type"] for e in await every_page(api, "/v1/events", user)}
    assert {"import.succeeded", "refund_case.created"} <= types
    delivered = [r for r in receiver.received if r.headers.get("acorn-event-type")]
    assert {"import.succeeded", "refund_case.created"} <= {r.headers["acorn-event-type"] for r in delivered}
    for received in delivered:
        assert verify(received.body, received.headers["acorn-signature"], secret)
        body = orjson.loads(received.body)
        assert str(uuid.UUID(body["id"])) == received.headers["acorn-event-id"]
