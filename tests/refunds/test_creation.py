"""Case creation: one case per deduction, classified and scored, idempotent; later entries link to their case."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.refunds.jobs import open_refund_cases
from acorn_api.refunds.models import RefundCase
from acorn_api.webhooks.models import Event
from tests.conftest import Tenant
from tests.refunds.factories import make_entry, make_import, make_invoice


async def _cases(session: AsyncSession, tenant: Tenant) -> list[RefundCase]:
    return list(
        await session.scalars(
            select(RefundCase).where(RefundCase.account_id == tenant.id).order_by(RefundCase.opened_on)
        )
    )


async def test_every_deduction_gets_one_classified_case(
    session: AsyncSession, account: Tenant, job_ctx: dict[str, Any]
) -> None:
    await make_invoice(session, account.id, "INV-1", due_on=date(2026, 11, 30))
    await make_entry(session, account.id, "shortage_claim", "-120.00", invoice_number="INV-1")
    await make_entry(session, account.id, "chargeback", "-45.00", description="ASN accuracy - missing ASN")
    await make_entry(session, account.id, "coop", "-900.00", occurred_on=date(2026, 2, 28))
    await make_entry(session, account.id, "invoice", "1000.00", invoice_number="INV-1")  # not a deduction

    result = await open_refund_cases(job_ctx, str(account.id))

    assert result["created"] == 3
    by_type = {c.type: c for c in await _cases(session, account)}
    assert set(by_type) == {"shortage", "compliance_chargeback", "coop"}
    shortage = by_type["shortage"]
    assert shortage.amount == Decimal("120.0000") and shortage.currency == "USD"
    assert shortage.dispute_deadline == date(2026, 12, 30)  # invoice due date + 30 days
    assert shortage.status == "open"
    assert by_type["compliance_chargeback"].subtype == "asn_accuracy"
    assert by_type["coop"].dispute_deadline == date(2028, 2, 28)  # two years (24 months)
    assert by_type["coop"].status == "needs_review"  # 900 ≥ the 500 review threshold
    assert shortage.expected_recovery > 0 and shortage.priority > 0


async def test_creation_records_created_and_needs_review_events(
    session: AsyncSession, account: Tenant, job_ctx: dict[str, Any]
) -> None:
    await make_entry(session, account.id, "shortage_claim", "-50.00")
    await make_entry(session, account.id, "price_claim", "-700.00")

    await open_refund_cases(job_ctx, str(account.id))

    types = list(await session.scalars(select(Event.type).where(Event.account_id == account.id)))
    assert sorted(types) == ["refund_case.created", "refund_case.created", "refund_case.needs_review"]


async def test_the_same_import_twice_creates_nothing_more(
    session: AsyncSession, account: Tenant, job_ctx: dict[str, Any]
) -> None:
    imp = await make_import(session, account.id)
    for n in range(3):
        await make_entry(session, account.id, "shortage_claim", f"-{n + 1}0.00", source_import_id=imp.id)
    await make_entry(session, account.id, "price_claim", "-10.00")  # another import's entry

    first = await open_refund_cases(job_ctx, str(account.id), str(imp.id))
    second = await open_refund_cases(job_ctx, str(account.id), str(imp.id))

    assert (first["created"], second["created"]) == (3, 0)
    assert len(await _cases(session, account)) == 3
    events = await session.scalar(select(func.count()).select_from(Event).where(Event.account_id == account.id))
    assert events == 3
    assert (await open_refund_cases(job_ctx, str(account.id)))["created"] == 1  # None = every entry without a case


async def test_a_case_appears_in_the_api_with_its_entries(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, job_ctx: dict[str, Any]
) -> None:
    entry = await make_entry(session, account.id, "shortage_claim", "-120.00", invoice_number="INV-9")
    await open_refund_cases(job_ctx, str(account.id))

    r = await client.get("/v1/refund-cases", headers=account.headers())
    assert r.status_code == 200, r.text
    [case] = r.json()["data"]
    detail = (await client.get(f"/v1/refund-cases/{case['id']}", headers=account.headers())).json()
    assert detail["ledger_entry_ids"] == [str(entry.id)]
    assert detail["amount"] == "120.0000" and detail["type"] == "shortage"
    assert "invoice" in detail["missing_evidence"]
