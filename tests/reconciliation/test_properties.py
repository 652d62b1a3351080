"""Properties over generated ledgers: every invoice's money adds up, and incremental = full matching."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.reconciliation.models import JournalEntry
from acorn_api.reconciliation.service import journal_lines
from tests.conftest import Tenant
from tests.reconciliation.factories import DAY0, Ledger

KINDS = [
    "payment",
    "payment",
    "shortage_claim",
    "price_claim",
    "chargeback",
    "coop",
    "shortage_reversal",
    "price_claim_reversal",
    "adjustment",
    "terms_discount",
]
SIGN = {"shortage_reversal": 1, "price_claim_reversal": 1}
CASE_TYPE = {"shortage_claim": "shortage", "price_claim": "price_claim", "chargeback": "compliance_chargeback"}
CASE_STATUSES = ["open", "disputed", "partially_recovered", "written_off", "recovered", "denied"]

cents = st.integers(min_value=1, max_value=2_000_000)


@dataclass
class Event:
    kind: str
    cents: int
    batch: int
    day: int
    case_status: str | None
    write_off_share: int  # percent of the deduction its case wrote off


event_st = st.builds(
    Event,
    kind=st.sampled_from(KINDS),
    cents=cents,
    batch=st.integers(0, 2),
    day=st.integers(0, 120),
    case_status=st.none() | st.sampled_from(CASE_STATUSES),
    write_off_share=st.sampled_from([0, 0, 50, 100]),
)
invoice_st = st.tuples(
    cents, st.sampled_from(["USD", "EUR"]), st.integers(0, 2), st.lists(event_st, max_size=6), st.booleans()
)
ledger_st = st.lists(invoice_st, min_size=1, max_size=5)

DERIVED = [
    ("invoice_balances", "invoice_number", "matched_at"),
    ("balance_rollups", "grain, period, store_id, vendor_code, currency, deduction_type", None),
    ("deduction_facts", "month, entry_type, store_id, asin, issue_type, currency", None),
    ("purchase_order_facts", "month, asin, currency", None),
]


async def snapshot(session: AsyncSession, account_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table, order, volatile in DERIVED:
        rows = await session.execute(
            text(f"SELECT * FROM {table} WHERE account_id = :a ORDER BY {order}"),
            {"a": account_id},
        )
        out[table] = [{k: v for k, v in r._mapping.items() if k != volatile} for r in rows]
    unmatched = await session.execute(
        text("SELECT payment_line_id FROM unmatched_payments WHERE account_id = :a ORDER BY 1"), {"a": account_id}
    )
    out["unmatched_payments"] = [dict(r._mapping) for r in unmatched]
    return out


async def build(ledger: Ledger, invoices: list[tuple[int, str, int, list[Event], bool]]) -> None:
    """Three imports; after each, an incremental match, as the import job would enqueue it."""
    for batch in range(3):
        imp = await ledger.new_import()
        for n, (amount, currency, inv_batch, events, has_row) in enumerate(invoices):
            number = f"INV-{n}"
            if inv_batch == batch:
                await ledger.invoice(number, Decimal(amount) / 100, currency=currency, with_row=has_row)
            for i, e in enumerate(events):
                if e.batch != batch:
                    continue
                value = Decimal(e.cents) / 100
                on = DAY0 + timedelta(days=e.day)
                if e.kind == "payment":
                    await ledger.paid(f"PAY-{n}-{i}", number, value, currency=currency, on=on)
                    continue
                signed = value * SIGN.get(e.kind, -1)
                entry = await ledger.entry(e.kind, number, signed, currency=currency, on=on)
                if e.kind in CASE_TYPE and e.case_status:
                    written_off = (value * e.write_off_share / 100).quantize(Decimal("0.01"))
                    await ledger.case(
                        entry, case_type=CASE_TYPE[e.kind], status=e.case_status, written_off=str(written_off)
                    )
        await ledger.match(imp)


@settings_(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invoices=ledger_st)
async def test_money_adds_up_and_incremental_equals_full(
    session: AsyncSession, account: Tenant, invoices: list[tuple[int, str, int, list[Event], bool]]
) -> None:
    savepoint = await session.begin_nested()
    try:
        ledger = Ledger(session, account.id)
        await build(ledger, invoices)
        incremental = await snapshot(session, account.id)

        balances = incremental["invoice_balances"]
        assert len(balances) == len(invoices)
        sums = dict(
            (
                await session.execute(
                    text(
                        "SELECT invoice_number, sum(amount) FROM ledger_entries WHERE account_id = :a "
                        "GROUP BY invoice_number"
                    ),
                    {"a": account.id},
                )
            ).all()
        )
        for b in balances:
            assert b["invoiced"] - b["paid"] - b["deducted"] + b["reversed"] - b["written_off"] == b["open_balance"], b
            assert b["open_balance"] == sums[b["invoice_number"]]  # one currency per invoice: the ledger's sum
            assert b["open_deductions"] >= 0
        totals = [r for r in incremental["balance_rollups"] if r["deduction_type"] == "" and r["grain"] == "day"]
        for measure in ("invoiced", "paid", "deducted", "open_balance"):
            for currency in ("USD", "EUR"):
                assert sum(r[measure] for r in totals if r["currency"] == currency) == sum(
                    b[measure] for b in balances if b["currency"] == currency
                )

        # full matching from scratch gives exactly the same tables
        for table, _, _ in DERIVED:
            await session.execute(text(f"DELETE FROM {table} WHERE account_id = :a"), {"a": account.id})
        await session.execute(
            text("DELETE FROM reconciliation_applied_imports WHERE account_id = :a"), {"a": account.id}
        )
        full_result = await ledger.match()
        assert await snapshot(session, account.id) == incremental
        assert full_result.journal_lines == 0  # every entry was journalised once, by its import's run

        # the journal: two balanced lines per non-invoice entry, a gap-free sequence
        entries = (
            await session.scalars(
                select(JournalEntry).where(JournalEntry.account_id == account.id).order_by(JournalEntry.seq)
            )
        ).all()
        lines = [line for entry in entries for line in journal_lines(entry)]
        assert [r.seq for r in lines] == list(range(1, len(lines) + 1))
        per_entry: dict[uuid.UUID, Decimal] = {}
        for r in lines:
            per_entry[r.ledger_entry_id] = per_entry.get(r.ledger_entry_id, Decimal(0)) + r.amount
        assert all(v == 0 for v in per_entry.values())
        non_invoice = sum(1 for *_, events, _ in invoices for _ in events)
        assert len(per_entry) == non_invoice
    finally:
        await savepoint.rollback()


async def test_a_rollup_key_an_invoice_leaves_is_deleted_as_a_full_run_would(
    session: AsyncSession, account: Tenant
) -> None:
    """An invoice known only from the ledger takes its vendor code from its entries: a later entry naming one
    moves its rollup rows from the "no vendor code" key to that code; the emptied rows go, as in a full run."""
    ledger = Ledger(session, account.id)
    await ledger.new_import()
    await ledger.invoice("INV-V", "100.00", vendor_code=None, with_row=False)
    first = await ledger.match(ledger.current_import)
    assert first.invoices_matched == 1
    vendor_codes = text(
        "SELECT DISTINCT vendor_code FROM balance_rollups WHERE account_id = :a AND invoice_count <> 0 ORDER BY 1"
    )
    assert list(await session.scalars(vendor_codes, {"a": account.id})) == [""]

    await ledger.new_import()
    await ledger.entry("payment", "INV-V", "-60.00", payment_number="PAY-V", vendor_code="V2")
    await ledger.match(ledger.current_import)
    incremental = await snapshot(session, account.id)
    assert {r["vendor_code"] for r in incremental["balance_rollups"]} == {"V2"}  # none left at zero under ""

    for table, _, _ in DERIVED:
        await session.execute(text(f"DELETE FROM {table} WHERE account_id = :a"), {"a": account.id})
    await session.execute(text("DELETE FROM reconciliation_applied_imports WHERE account_id = :a"), {"a": account.id})
    await ledger.match()
    assert await snapshot(session, account.id) == incremental
