"""Later ledger entries join their case: reversals recover, a provision's reversal closes it, later payments count."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.refunds.jobs import open_refund_cases
from acorn_api.refunds.models import CaseEntry, RefundCase
from acorn_api.webhooks.models import Event
from tests.conftest import Tenant
from tests.refunds.factories import make_entry


async def _reload(session: AsyncSession, case: RefundCase) -> RefundCase:
    await session.refresh(case)
    return case


async def test_a_shortage_reversal_recovers_its_shortage_case(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any, job_ctx: dict[str, Any]
) -> None:
    case = await make_case(account.id, "shortage_claim", "-120.00", invoice_number="INV-7SC")
    other = await make_case(account.id, "shortage_claim", "-50.00", invoice_number="INV-8SC")
    for body in ({"to": "ready_to_dispute", "version": 1}, {"to": "disputed", "version": 2, "dispute_reference": "D"}):
        await client.post(f"/v1/refund-cases/{case.id}/transitions", json=body, headers=account.headers())
    scr = await make_entry(session, account.id, "shortage_reversal", "120.00", invoice_number="INV-7SCR")

    result = await open_refund_cases(job_ctx, str(account.id))

    assert result["linked_cases"] == 1 and result["created"] == 0
    case = await _reload(session, case)
    assert (case.status, case.recovered_amount) == ("recovered", 120)
    assert (await _reload(session, other)).status == "open"
    detail = (await client.get(f"/v1/refund-cases/{case.id}", headers=account.headers())).json()
    assert detail["ledger_entry_ids"] == [str(case.origin_entry_id), str(scr.id)]
    timeline = (await client.get(f"/v1/refund-cases/{case.id}/events", headers=account.headers())).json()["data"]
    assert [e["kind"] for e in timeline][-2:] == ["entry_linked", "status_changed"]
    assert timeline[-2]["ledger_entry_id"] == str(scr.id) and timeline[-1]["to_status"] == "recovered"
    events = list(await session.scalars(select(Event.data).where(Event.type == "refund_case.status_changed")))
    assert events[-1]["status"] == "recovered" and events[-1]["previous_status"] == "disputed"


async def test_a_partial_reversal_partially_recovers_and_linking_twice_changes_nothing(
    session: AsyncSession, account: Tenant, make_case: Any, job_ctx: dict[str, Any]
) -> None:
    case = await make_case(account.id, "price_claim", "-100.00", invoice_number="INV-3")
    await make_entry(session, account.id, "price_claim_reversal", "40.00", invoice_number="INV-3")
    await open_refund_cases(job_ctx, str(account.id))
    again = await open_refund_cases(job_ctx, str(account.id))
    case = await _reload(session, case)
    assert (case.status, case.recovered_amount) == ("partially_recovered", 40)
    assert again["linked_cases"] == 0
    links = list(await session.scalars(select(CaseEntry).where(CaseEntry.case_id == case.id)))
    assert [link.role for link in links] == ["reversal"]


async def test_a_reversal_matches_by_reference_when_invoice_numbers_differ(
    session: AsyncSession, account: Tenant, make_case: Any, job_ctx: dict[str, Any]
) -> None:
    case = await make_case(account.id, "shortage_claim", "-30.00", reference="SC-991")
    await make_entry(session, account.id, "shortage_reversal", "30.00", reference="SC-991")
    await open_refund_cases(job_ctx, str(account.id))
    assert (await _reload(session, case)).status == "recovered"


async def test_a_provision_reversal_closes_its_provision(
    session: AsyncSession, account: Tenant, make_case: Any, job_ctx: dict[str, Any]
) -> None:
    case = await make_case(account.id, "provision", "-2000.00", invoice_number="PROV-11")
    await make_entry(session, account.id, "provision_reversal", "2000.00", invoice_number="PROV-11")
    await open_refund_cases(job_ctx, str(account.id))
    case = await _reload(session, case)
    assert (case.status, case.recovered_amount, case.priority) == ("closed", 2000, 0)


async def test_a_later_payment_of_a_short_paid_invoice_updates_its_case(
    session: AsyncSession, account: Tenant, make_case: Any, job_ctx: dict[str, Any]
) -> None:
    case = await make_case(
        account.id, "shortage_claim", "-60.00", invoice_number="INV-5", payment_number="PAY-1",
        occurred_on=date(2026, 11, 1),
    )  # fmt: skip
    # the payment that short-paid it does not count; a later one does
    await make_entry(session, account.id, "payment", "-940.00", invoice_number="INV-5", payment_number="PAY-1",
                     occurred_on=date(2026, 11, 1))  # fmt: skip
    await open_refund_cases(job_ctx, str(account.id))
    assert (await _reload(session, case)).recovered_amount == 0
    await make_entry(session, account.id, "payment", "-60.00", invoice_number="INV-5", payment_number="PAY-2",
                     occurred_on=date(2026, 12, 1))  # fmt: skip
    await open_refund_cases(job_ctx, str(account.id))
    case = await _reload(session, case)
    assert (case.status, case.recovered_amount) == ("recovered", 60)
    roles = list(await session.scalars(select(CaseEntry.role).where(CaseEntry.case_id == case.id)))
    assert roles == ["payment"]


async def test_a_reversal_of_another_account_never_links(
    session: AsyncSession, account: Tenant, other_account: Tenant, make_case: Any, job_ctx: dict[str, Any]
) -> None:
    case = await make_case(account.id, "shortage_claim", "-30.00", invoice_number="INV-X")
    await make_entry(session, other_account.id, "shortage_reversal", "30.00", invoice_number="INV-X")
    await open_refund_cases(job_ctx, str(other_account.id))
    await open_refund_cases(job_ctx, str(account.id))
    assert (await _reload(session, case)).status == "open"
