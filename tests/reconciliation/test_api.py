"""The reconciliation and analytics endpoints, over ledgers written by hand and matched by the real job."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem, VendorConnection
from acorn_api.core.jobs import JobOutbox
from acorn_api.core.time import utcnow
from acorn_api.reconciliation.jobs import match_invoices
from acorn_api.reconciliation.models import ReconciliationRun, RunKind, RunStatus
from acorn_api.webhooks.events import DELIVER_EVENT_JOB
from tests.conftest import Tenant
from tests.reconciliation.factories import DAY0, Ledger
from tests.stores.factories import store_body

D = Decimal


async def three_invoices(ledger: Ledger, store_id: uuid.UUID | None = None) -> None:
    """INV-A paid, INV-B short 50 with no explanation, INV-C unpaid and long past due."""
    await ledger.invoice("INV-A", "1000.00", store_id=store_id, on=DAY0)
    await ledger.paid("PAY-1", "INV-A", "1000.00")
    await ledger.invoice("INV-B", "500.00", store_id=store_id, on=DAY0 + timedelta(days=1))
    await ledger.paid("PAY-1", "INV-B", "450.00")
    await ledger.invoice("INV-C", "200.00", store_id=store_id, on=DAY0 + timedelta(days=40))


async def test_start_a_run_and_watch_it_succeed(
    client: httpx.AsyncClient,
    account: Tenant,
    ledger: Ledger,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    await three_invoices(ledger)
    await ledger.session.commit()
    r = await client.post("/v1/reconciliation/runs", json={}, headers=account.headers())
    assert r.status_code == 202, r.text
    run = r.json()
    assert (run["status"], run["kind"]) == ("queued", "full")
    assert r.headers["Location"] == f"/v1/reconciliation/runs/{run['id']}"
    again = await client.post("/v1/reconciliation/runs", json={}, headers=account.headers())
    assert (again.status_code, again.json()["id"]) == (200, run["id"])

    await match_invoices({"sessionmaker": sessionmaker, "redis": redis}, str(account.id), None, run["id"])
    done = (await client.get(r.headers["Location"], headers=account.headers())).json()
    assert (done["status"], done["invoices_matched"], done["newly_unexplained"]) == ("succeeded", 3, 1)
    # a second delivery of the same job changes nothing
    assert (
        await match_invoices({"sessionmaker": sessionmaker, "redis": redis}, str(account.id), None, run["id"]) is None
    )


async def test_an_import_triggers_an_incremental_run(
    client: httpx.AsyncClient,
    account: Tenant,
    ledger: Ledger,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    imp = await ledger.new_import()
    await three_invoices(ledger)
    await ledger.session.commit()
    run_id = await match_invoices({"sessionmaker": sessionmaker, "redis": redis}, str(account.id), str(imp))
    assert run_id is not None
    run = (await client.get(f"/v1/reconciliation/runs/{run_id}", headers=account.headers())).json()
    assert (run["kind"], run["import_id"], run["status"], run["invoices_matched"]) == (
        "incremental",
        str(imp),
        "succeeded",
        3,
    )


async def test_a_redelivered_incremental_match_finishes_the_run_a_killed_worker_left_running(
    client: httpx.AsyncClient,
    account: Tenant,
    ledger: Ledger,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    imp = await ledger.new_import()
    await three_invoices(ledger)
    # what a worker SIGKILLed after the run's first transaction leaves: the run committed as running, no result
    stuck = ReconciliationRun(
        id=uuid.uuid4(), kind=RunKind.incremental, import_id=imp, status=RunStatus.running, started_at=utcnow()
    )
    stuck.account_id = account.id
    ledger.session.add(stuck)
    await ledger.session.commit()

    ctx = {"sessionmaker": sessionmaker, "redis": redis}
    assert await match_invoices(ctx, str(account.id), str(imp)) == str(stuck.id), "the same run, not a second one"
    runs = (await client.get("/v1/reconciliation/runs/" + str(stuck.id), headers=account.headers())).json()
    assert (runs["status"], runs["invoices_matched"]) == ("succeeded", 3)
    async with sessionmaker() as s:
        count = await s.scalar(
            select(func.count()).select_from(ReconciliationRun).where(ReconciliationRun.import_id == imp)
        )
    assert count == 1
    # a later delivery for the same import (nothing unfinished) still records a run of its own, as before
    assert await match_invoices(ctx, str(account.id), str(imp)) not in (None, str(stuck.id))


async def test_list_invoices_filters_and_pages(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    await three_invoices(ledger)
    await ledger.match()
    await ledger.session.commit()
    h = account.headers()
    short = (await client.get("/v1/reconciliation/invoices?status=unexplained_short", headers=h)).json()
    assert [(i["invoice_number"], i["open_balance"]) for i in short["data"]] == [
        ("INV-B", {"amount": "50.0000", "currency": "USD"})
    ]
    first = (await client.get("/v1/reconciliation/invoices?limit=2", headers=h)).json()
    assert [i["invoice_number"] for i in first["data"]] == ["INV-C", "INV-B"]
    assert first["has_more"] is True
    second = (await client.get(f"/v1/reconciliation/invoices?limit=2&cursor={first['next_cursor']}", headers=h)).json()
    assert ([i["invoice_number"] for i in second["data"]], second["has_more"]) == (["INV-A"], False)
    opened = (await client.get("/v1/reconciliation/invoices?min_open_balance=100", headers=h)).json()
    assert [i["invoice_number"] for i in opened["data"]] == ["INV-C"]
    ranged = (await client.get("/v1/reconciliation/invoices?from=2026-01-06&to=2026-01-31", headers=h)).json()
    assert [i["invoice_number"] for i in ranged["data"]] == ["INV-B"]
    bad = await client.get("/v1/reconciliation/invoices?cursor=nope", headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_invoices_as_csv(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    await three_invoices(ledger)
    await ledger.match()
    await ledger.session.commit()
    r = await client.get("/v1/reconciliation/invoices?format=csv", headers=account.headers())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["invoice_number"], row["status"], row["open_balance"]) for row in rows] == [
        ("INV-C", "unpaid", "200.0000"),
        ("INV-B", "unexplained_short", "50.0000"),
        ("INV-A", "paid", "0.0000"),
    ]


async def test_deductions_by_type_stay_exact_beyond_a_float(
    client: httpx.AsyncClient, account: Tenant, ledger: Ledger
) -> None:
    # 18 significant digits: a binary float holds ~15-17, so 0.0001 would be lost on the way through a JSON number
    await ledger.invoice("INV-BIG", "90000000000000.0000")
    await ledger.entry("shortage_claim", "INV-BIG", "-12345678901234.5678")
    await ledger.entry("coop", "INV-BIG", "-0.0001")
    await ledger.match()
    await ledger.match()  # a re-run compares the stored json with the computed one as text (json has no "=")
    await ledger.session.commit()
    h = account.headers()
    body = (await client.get("/v1/reconciliation/invoices", headers=h)).json()
    assert body["data"][0]["deductions"] == {
        "coop": {"amount": "0.0001", "currency": "USD"},
        "shortage_claim": {"amount": "12345678901234.5678", "currency": "USD"},
    }
    assert body["data"][0]["deducted"] == {"amount": "12345678901234.5679", "currency": "USD"}
    rows = list(
        csv.DictReader(io.StringIO((await client.get("/v1/reconciliation/invoices?format=csv", headers=h)).text))
    )
    assert rows[0]["deductions"] == "coop=0.0001;shortage_claim=12345678901234.5678"


async def test_summary_per_store_and_currency_with_conversion(
    client: httpx.AsyncClient, account: Tenant, ledger: Ledger
) -> None:
    h = account.headers()
    store = (await client.post("/v1/stores", json=store_body(), headers=h)).json()
    await three_invoices(ledger, store_id=uuid.UUID(store["id"]))
    await ledger.invoice("INV-E", "100.00", currency="EUR")
    await ledger.paid("PAY-E", "INV-E", "90.00", currency="EUR")
    await ledger.entry("chargeback", "INV-E", "-10.00", currency="EUR")
    await ledger.payment("PAY-E", currency="EUR", payment_currency="USD", exchange_rate="1.1")
    await ledger.match()
    await ledger.session.commit()

    r = await client.get("/v1/reconciliation/summary?group_by=store", headers=h)
    assert r.status_code == 200, r.text
    rows = {(row["group"], row["currency"]): row for row in r.json()["rows"]}
    usd = rows[(store["id"], "USD")]
    assert (usd["label"], usd["invoice_count"], usd["invoiced"]["amount"], usd["paid"]["amount"]) == (
        "NYC-01",
        3,
        "1700.0000",
        "1450.0000",
    )
    assert (usd["open_balance"]["amount"], usd["unexplained_short"]["amount"]) == ("250.0000", "50.0000")
    eur = rows[(None, "EUR")]  # never added to the USD figures
    assert (eur["invoiced"]["amount"], eur["deducted"]["amount"], eur["recovery_rate"]) == (
        "100.0000",
        "10.0000",
        "0.0000",
    )

    converted = (await client.get("/v1/reconciliation/summary?report_currency=USD", headers=h)).json()
    assert converted["rates_used"] == [
        {
            "from_currency": "EUR",
            "to_currency": "USD",
            "rate": "1.100000",
            "payment_number": "PAY-E",
            "payment_date": "2026-02-04",
        }
    ]
    assert [(row["currency"], row["invoiced"]["amount"]) for row in converted["rows"]] == [("USD", "1810.0000")]

    missing = await client.get("/v1/reconciliation/summary?report_currency=JPY", headers=h)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["query", "report_currency"]

    by_type = (await client.get("/v1/reconciliation/summary?group_by=deduction_type", headers=h)).json()
    assert [(row["group"], row["currency"], row["deducted"]["amount"], row["invoiced"]) for row in by_type["rows"]] == [
        ("chargeback", "EUR", "10.0000", None)
    ]
    by_month = (await client.get("/v1/reconciliation/summary?group_by=month&from=2026-02-01", headers=h)).json()
    assert [(row["group"], row["invoice_count"]) for row in by_month["rows"]] == [("2026-02", 1)]


async def test_aging_buckets_from_due_date(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    await three_invoices(ledger)  # due 2026-02-04 (A), 02-05 (B), 03-16 (C)
    await ledger.match()
    await ledger.session.commit()
    r = await client.get("/v1/reconciliation/aging?as_of=2026-03-20", headers=account.headers())
    assert r.status_code == 200, r.text
    got = [(row["bucket"], row["open_balance"]["amount"]) for row in r.json()["rows"]]
    assert got == [("0_30", "200.0000"), ("31_60", "50.0000")]
    later = (await client.get("/v1/reconciliation/aging?as_of=2026-06-01", headers=account.headers())).json()
    assert [(row["bucket"], row["open_balance"]["amount"]) for row in later["rows"]] == [
        ("61_90", "200.0000"),
        ("90_plus", "50.0000"),
    ]


async def test_unmatched_payments_endpoint(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    await ledger.invoice("INV-6", "250.00", po_number="PO-77")
    await ledger.paid("PAY-6", "INV-6X", "250.00", po_number="PO-77")
    await ledger.match()
    await ledger.session.commit()
    body = (await client.get("/v1/reconciliation/unmatched-payments", headers=account.headers())).json()
    assert [(u["invoice_number"], u["amount"]["amount"]) for u in body["data"]] == [("INV-6X", "250.0000")]
    assert [c["invoice_number"] for c in body["data"][0]["candidates"]] == ["INV-6"]


async def test_suggestions_ranked_by_money_at_stake(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    today = utcnow().date()
    old = today - timedelta(days=120)
    await ledger.invoice("INV-UNPAID", "300.00", on=old)  # chase: 300
    await ledger.invoice("INV-SHORT", "1000.00", on=old)
    await ledger.paid("PAY-1", "INV-SHORT", "900.00", on=old + timedelta(days=30))  # investigate: 100
    await ledger.invoice("INV-SC", "2000.00", on=old)
    await ledger.paid("PAY-1", "INV-SC", "1500.00", on=old + timedelta(days=30))
    claim = await ledger.entry("shortage_claim", "INV-SC", "-500.00", on=old + timedelta(days=30))
    case = await ledger.case(claim, status="ready_to_dispute", deadline=today + timedelta(days=5))  # dispute: 500
    pc = await ledger.entry("price_claim", "INV-SC", "-0.00", on=old + timedelta(days=30))
    await ledger.case(pc, case_type="price_claim", status="open")  # nothing at stake: not listed
    await ledger.paid("PAY-2", "INV-UNPAI", "300.00", on=today)  # match payment: 300
    await ledger.match()
    await ledger.session.commit()
    body = (await client.get("/v1/reconciliation/suggestions", headers=account.headers())).json()
    got = [(s["rank"], s["kind"], s["amount_at_stake"]["amount"]) for s in body["data"]]
    assert got == [
        (1, "dispute_case", "500.0000"),
        (2, "chase_unpaid", "300.0000"),
        (3, "match_payment", "300.0000"),
        (4, "investigate_short", "100.0000"),
    ]
    assert body["data"][0]["subject_id"] == str(case.id)
    assert "evidence ready" in body["data"][0]["reason"]
    assert body["data"][2]["invoice_number"] == "INV-UNPAID"


async def test_an_unexplained_short_payment_event_is_queued_for_the_accounts_endpoints(
    client: httpx.AsyncClient, account: Tenant, ledger: Ledger
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": "*"}  # loopback is allowed in tests; nothing listens
    assert (await client.post("/v1/webhook-endpoints", json=body, headers=account.headers())).status_code == 201
    await ledger.invoice("INV-S", "1000.00")
    await ledger.paid("PAY-S", "INV-S", "900.00")
    result = await ledger.match()
    assert result.newly_unexplained == 1
    r = await client.get(
        "/v1/events", params={"type": "reconciliation.unexplained_short_payment"}, headers=account.headers()
    )
    [event] = r.json()["data"]
    assert event["data"]["open_balance"] == {"amount": "100.0000", "currency": "USD"}
    queued = await ledger.session.scalars(select(JobOutbox.args).where(JobOutbox.function == DELIVER_EVENT_JOB))
    assert [str(account.id), event["id"]] in list(queued)


@pytest.mark.parametrize("limit", [1, 3, 4, 100])
async def test_journal_pages_exactly_once(
    client: httpx.AsyncClient, account: Tenant, ledger: Ledger, limit: int
) -> None:
    """Any page size, odd ones included (a page may end between an entry's two lines), yields every line once."""
    await three_invoices(ledger)  # two payments
    await ledger.entry("shortage_claim", "INV-B", "-50.00")
    await ledger.match()
    await ledger.session.commit()
    h = account.headers()
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"/v1/reconciliation/journal?limit={limit}" + (f"&since_cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=h)).json()
        assert 0 < len(page["data"]) <= limit
        seen += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert [line["seq"] for line in seen] == [1, 2, 3, 4, 5, 6]
    categories = sorted((line["category"], line["amount"]) for line in seen)
    assert categories == [
        ("cash", "1000.0000"),
        ("cash", "450.0000"),
        ("deduction_expense", "50.0000"),
        ("receivable", "-1000.0000"),
        ("receivable", "-450.0000"),
        ("receivable", "-50.0000"),
    ]
    # polling again from the last cursor returns nothing; new entries come after it, once
    empty = (await client.get(f"/v1/reconciliation/journal?since_cursor={cursor}", headers=h)).json()
    assert (empty["data"], empty["next_cursor"]) == ([], cursor)
    await ledger.entry("shortage_reversal", "INV-B", "50.00")
    await ledger.match()
    await ledger.match()
    await ledger.session.commit()
    new = (await client.get(f"/v1/reconciliation/journal?since_cursor={cursor}", headers=h)).json()
    assert [(line["seq"], line["category"], line["deduction_type"], line["amount"]) for line in new["data"]] == [
        (7, "recovery_income", "shortage_claim", "-50.0000"),
        (8, "receivable", None, "50.0000"),
    ]


async def test_another_account_sees_nothing(
    client: httpx.AsyncClient, account: Tenant, other_account: Tenant, ledger: Ledger, other_ledger: Ledger
) -> None:
    await three_invoices(ledger)
    await ledger.paid("PAY-9", "UNKNOWN-1", "10.00")
    await ledger.match()
    await other_ledger.invoice("INV-OTHER", "5.00")
    await other_ledger.match()
    await ledger.session.commit()
    h = other_account.headers()
    invoices = (await client.get("/v1/reconciliation/invoices", headers=h)).json()
    assert [i["invoice_number"] for i in invoices["data"]] == ["INV-OTHER"]
    assert (await client.get("/v1/reconciliation/unmatched-payments", headers=h)).json()["data"] == []
    assert (await client.get("/v1/reconciliation/journal", headers=h)).json()["data"] == []
    summary = (await client.get("/v1/reconciliation/summary", headers=h)).json()
    assert [(row["invoice_count"], row["invoiced"]["amount"]) for row in summary["rows"]] == [(1, "5.0000")]
    suggestions = (await client.get("/v1/reconciliation/suggestions", headers=h)).json()
    assert all(s["invoice_number"] == "INV-OTHER" for s in suggestions["data"])
    run = await client.post("/v1/reconciliation/runs", json={}, headers=account.headers())
    assert (await client.get(f"/v1/reconciliation/runs/{run.json()['id']}", headers=h)).status_code == 404


async def test_deduction_trends(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    imp = await ledger.new_import()
    await ledger.invoice("INV-1", "1000.00", on=date(2026, 1, 10))
    await ledger.entry("shortage_claim", "INV-1", "-40.00", on=date(2026, 1, 20), asin="B00A")
    await ledger.entry("shortage_claim", "INV-1", "-10.00", on=date(2026, 1, 25), asin="B00B")
    await ledger.entry("chargeback", "INV-1", "-25.00", on=date(2026, 1, 25), raw={"issue_type": "ASN accuracy"})
    await ledger.entry("shortage_reversal", "INV-1", "20.00", on=date(2026, 1, 28), asin="B00A")
    await ledger.match(imp)
    await ledger.session.commit()
    body = (await client.get("/v1/analytics/deductions?interval=month&group_by=type", headers=account.headers())).json()
    got = {p["group"]: p for p in body["data"]}
    sc = got["shortage_claim"]
    assert (sc["deducted"]["amount"], sc["count"], sc["recovered"]["amount"]) == ("50.0000", 2, "20.0000")
    assert (sc["share_of_invoiced"], sc["recovery_rate"]) == ("0.0500", "0.4000")
    issue = (await client.get("/v1/analytics/deductions?group_by=issue_type", headers=account.headers())).json()
    assert {(p["group"], p["deducted"]["amount"]) for p in issue["data"]} == {
        (None, "50.0000"),
        ("ASN accuracy", "25.0000"),
    }
    # the same import matched again adds nothing
    await ledger.match(imp)
    await ledger.session.commit()
    again = (await client.get("/v1/analytics/deductions", headers=account.headers())).json()
    assert again == body


async def test_purchase_order_trends(client: httpx.AsyncClient, account: Tenant, ledger: Ledger) -> None:
    s = ledger.session
    conn = VendorConnection(
        account_id=account.id,
        name="c",
        region="NA",
        lwa_client_id_encrypted=b"x",
        lwa_client_secret_encrypted=b"x",
        lwa_refresh_token_encrypted=b"x",
        credentials_updated_at=datetime.now(UTC),
    )
    s.add(conn)
    await s.flush()
    for n, (day, ordered, acked, received, cost) in enumerate(
        [
            (date(2026, 1, 3), 10, 8, 6, "5.00"),
            (date(2026, 1, 20), 10, 10, 10, "6.00"),
            (date(2026, 2, 2), 4, 4, 0, "7.00"),
        ]
    ):
        po = PurchaseOrder(
            account_id=account.id,
            connection_id=conn.id,
            purchase_order_number=f"PO-{n}",
            state="Acknowledged",
            purchase_order_date=datetime(day.year, day.month, day.day, tzinfo=UTC),
        )
        s.add(po)
        await s.flush()
        s.add(
            PurchaseOrderItem(
                account_id=account.id,
                purchase_order_id=po.id,
                item_sequence_number="1",
                asin="B00A",
                ordered_quantity=ordered,
                acknowledged_quantity=acked,
                received_quantity=received,
                net_cost=D(cost),
                currency="USD",
            )
        )
    await ledger.match()
    await s.commit()
    body = (await client.get("/v1/analytics/purchase-orders?interval=month", headers=account.headers())).json()
    jan, feb = body["data"]
    assert (jan["period"], jan["asin"], jan["ordered_units"], jan["received_units"]) == ("2026-01-01", "B00A", 20, 16)
    assert (jan["fill_rate"], jan["acknowledgement_rate"], jan["average_unit_cost"]["amount"]) == (
        "0.8000",
        "0.9000",
        "5.5000",
    )
    assert (feb["period"], feb["fill_rate"], feb["ordered_cost"]["amount"]) == ("2026-02-01", "0.0000", "28.0000")


async def test_summary_date_ranges_mix_whole_months_and_edge_days(
    client: httpx.AsyncClient, account: Tenant, ledger: Ledger
) -> None:
    await three_invoices(ledger)  # invoice dates 2026-01-05 (A), 01-06 (B), 02-14 (C)
    await ledger.invoice("INV-D", "10.00", on=date(2026, 3, 1))
    await ledger.match()
    await ledger.session.commit()

    async def count(query: str) -> int:
        body = (await client.get(f"/v1/reconciliation/summary?{query}", headers=account.headers())).json()
        return sum(row["invoice_count"] for row in body["rows"])

    assert await count("from=2026-01-06&to=2026-02-14") == 2  # edge days only
    assert await count("from=2026-01-01&to=2026-01-31") == 2  # one whole month
    assert await count("from=2026-01-06&to=2026-03-01") == 3  # edge, whole February, edge
    assert await count("from=2026-01-06&to=2026-01-06") == 1
    assert await count("to=2026-02-13") == 2
    assert await count("from=2026-02-15") == 1
    assert await count("") == 4
    r = await client.get("/v1/reconciliation/summary?from=2026-02-01&to=2026-01-01", headers=account.headers())
    assert r.status_code == 422
