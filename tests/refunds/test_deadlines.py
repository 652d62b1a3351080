"""Dispute deadlines: the windows of DESIGN.md §1 across month ends, leap years and time zones; the daily run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Date, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.refunds import service
from acorn_api.refunds.models import RefundCase
from acorn_api.refunds.policy import DEFAULT_WINDOWS, days_left
from acorn_api.refunds.schemas import CaseOut
from acorn_api.webhooks.models import Event
from tests.conftest import Tenant
from tests.refunds.factories import make_invoice
from tests.stores.factories import store_body


@pytest.mark.parametrize(
    ("due_on", "deadline"),
    [
        (date(2027, 1, 31), date(2027, 3, 2)),  # across February, not a leap year
        (date(2028, 1, 31), date(2028, 3, 1)),  # a leap year
        (date(2026, 12, 15), date(2027, 1, 14)),  # across the year end
        (date(2027, 4, 30), date(2027, 5, 30)),
    ],
)
async def test_shortage_deadline_is_the_invoice_due_date_plus_30_days(
    session: AsyncSession, account: Tenant, make_case: Any, due_on: date, deadline: date
) -> None:
    await make_invoice(session, account.id, f"INV-{due_on}", due_on=due_on)
    case = await make_case(account.id, "shortage_claim", "-10", invoice_number=f"INV-{due_on}")
    assert case.dispute_deadline == deadline
    assert case.invoice_due_on == due_on


async def test_without_an_invoice_the_deduction_date_is_the_basis(account: Tenant, make_case: Any) -> None:
    case = await make_case(account.id, "price_claim", "-10", occurred_on=date(2027, 1, 31))
    assert case.dispute_deadline == date(2027, 3, 2)
    with_due = await make_case(account.id, "price_claim", "-10", occurred_on=date(2027, 1, 1), due_on=date(2027, 2, 1))
    assert with_due.dispute_deadline == date(2027, 3, 3)


async def test_chargeback_coop_and_provision_windows(account: Tenant, make_case: Any) -> None:
    cb = await make_case(account.id, "chargeback", "-10", occurred_on=date(2027, 2, 28))
    assert cb.dispute_deadline == date(2027, 3, 30)  # notice + 30 days
    coop = await make_case(account.id, "coop", "-10", occurred_on=date(2028, 2, 29))
    assert coop.dispute_deadline == date(2030, 2, 28)  # 24 months from a leap day lands on the month's end
    provision = await make_case(account.id, "provision", "-10")
    assert provision.dispute_deadline is None


async def test_the_python_and_sql_deadlines_agree_on_every_day_of_two_years(session: AsyncSession) -> None:
    from acorn_api.refunds.policy import sql_deadline

    start = date(2027, 1, 1)
    days = [start + timedelta(days=n) for n in range(0, 731, 3)]
    for case_type, window in DEFAULT_WINDOWS.items():
        if not window.has_deadline:
            continue
        for day in days[::5]:
            expr = sql_deadline(
                literal(case_type), cast(literal(day), Date), cast(literal(None), Date), {case_type: window}
            )
            assert await session.scalar(select(expr)) == window.deadline(day, None), (case_type, day)


async def test_days_left_counts_on_the_stores_calendar(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    tokyo = (
        await client.post("/v1/stores", json=store_body(code="TYO", timezone="Asia/Tokyo"), headers=account.headers())
    ).json()
    la = (
        await client.post(
            "/v1/stores", json=store_body(code="LAX", timezone="America/Los_Angeles"), headers=account.headers()
        )
    ).json()
    in_tokyo = await make_case(account.id, "chargeback", "-10", occurred_on=date(2027, 1, 1), store_id=tokyo["id"])
    in_la = await make_case(account.id, "chargeback", "-10", occurred_on=date(2027, 1, 1), store_id=la["id"])
    assert in_tokyo.dispute_deadline == in_la.dispute_deadline == date(2027, 1, 31)
    assert (in_tokyo.timezone, in_la.timezone) == ("Asia/Tokyo", "America/Los_Angeles")
    now = datetime(2027, 1, 30, 20, 0, tzinfo=UTC)  # Jan 31 05:00 in Tokyo, Jan 30 12:00 in Los Angeles
    assert CaseOut.of(in_tokyo, now).days_left == 0
    assert CaseOut.of(in_la, now).days_left == 1
    assert days_left(date(2027, 1, 31), now, "UTC") == 1


async def test_windows_are_configurable_and_move_open_deadlines(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id, "shortage_claim", "-10", occurred_on=date(2027, 1, 1))
    assert case.dispute_deadline == date(2027, 1, 31)
    r = await client.put(
        "/v1/case-settings",
        json={"review_threshold": "500", "windows": {"shortage": {"basis": "notice", "days": 40, "max_disputes": 3}}},
        headers=account.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["windows"]["shortage"]["days"] == 40 and r.json()["windows"]["coop"]["months"] == 24
    await session.refresh(case)
    assert case.dispute_deadline == date(2027, 2, 10)
    stale = await client.put(
        "/v1/case-settings", json={"review_threshold": "1", "version": 0}, headers=account.headers()
    )
    assert stale.status_code == 409


async def _events(session: AsyncSession, tenant: Tenant, type_: str) -> list[dict[str, Any]]:
    return list(await session.scalars(select(Event.data).where(Event.account_id == tenant.id, Event.type == type_)))


async def test_the_daily_run_warns_at_7_and_2_days_once_each_and_flags_missed_deadlines(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id, "chargeback", "-10", occurred_on=date(2027, 1, 1))  # deadline Jan 31
    disputed = await make_case(account.id, "chargeback", "-10", occurred_on=date(2027, 1, 1))
    for body in ({"to": "ready_to_dispute", "version": 1}, {"to": "disputed", "version": 2, "dispute_reference": "X"}):
        await client.post(f"/v1/refund-cases/{disputed.id}/transitions", json=body, headers=account.headers())

    def at(day: int) -> datetime:
        return datetime(2027, 1, day, 12, tzinfo=UTC)

    await service.run_deadlines(session, at(20))  # 11 days left: nothing
    assert await _events(session, account, "refund_case.deadline_approaching") == []
    await service.run_deadlines(session, at(24))  # 7 days
    await service.run_deadlines(session, at(25))  # 6 days: already warned
    warned = await _events(session, account, "refund_case.deadline_approaching")
    assert [(e["id"], e["days_left"]) for e in warned] == [(str(case.id), 7)]
    await service.run_deadlines(session, at(29))  # 2 days
    assert len(await _events(session, account, "refund_case.deadline_approaching")) == 2
    await service.run_deadlines(session, datetime(2027, 2, 1, 12, tzinfo=UTC))
    await session.refresh(case)
    await session.refresh(disputed)
    assert case.deadline_missed and not disputed.deadline_missed
    listed = await client.get("/v1/refund-cases?deadline_missed=true", headers=account.headers())
    assert [c["id"] for c in listed.json()["data"]] == [str(case.id)]
    kinds = [
        e["kind"]
        for e in (await client.get(f"/v1/refund-cases/{case.id}/events", headers=account.headers())).json()["data"]
    ]
    assert kinds == ["created", "deadline_approaching", "deadline_approaching", "deadline_missed"]


async def test_priority_rises_as_the_deadline_nears(session: AsyncSession, account: Tenant, make_case: Any) -> None:
    case = await make_case(account.id, "chargeback", "-100", occurred_on=date(2027, 1, 1))
    await service.run_deadlines(session, datetime(2027, 1, 2, tzinfo=UTC))
    await session.refresh(case)
    far = case.priority
    await service.run_deadlines(session, datetime(2027, 1, 28, tzinfo=UTC))
    await session.refresh(case)
    assert case.priority > far
    await service.run_deadlines(session, datetime(2027, 2, 5, tzinfo=UTC))
    await session.refresh(case)
    assert case.priority < far and case.likelihood < 1
    assert (
        await session.scalar(select(func.count()).select_from(RefundCase).where(RefundCase.account_id == account.id))
        == 1
    )
