"""Reconciliation rules: matching runs and the views built on their tables. Flushes, never commits."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller
from acorn_api.core.errors import invalid_field
from acorn_api.core.jobs import enqueue_after_commit
from acorn_api.core.money import Money
from acorn_api.core.time import utcnow
from acorn_api.ledger.models import REVERSAL_OF, EntryType
from acorn_api.reconciliation import repository as repo
from acorn_api.reconciliation.models import (
    NO_STORE,
    InvoiceBalance,
    JournalCategory,
    JournalEntry,
    ReconciliationRun,
    RunKind,
    RunStatus,
)
from acorn_api.reconciliation.schemas import (
    AgingOut,
    AgingRow,
    Candidate,
    DeductionTrendPoint,
    DeductionTrends,
    InvoiceBalanceOut,
    JournalLineOut,
    JournalPage,
    PurchaseOrderTrendPoint,
    PurchaseOrderTrends,
    RateUsed,
    RunCreate,
    SuggestionKind,
    SuggestionList,
    SuggestionOut,
    SummaryOut,
    SummaryRow,
    UnmatchedPage,
    UnmatchedPaymentOut,
    money,
)
from acorn_api.webhooks.events import EventType, announce

JOB_NAME = "match_invoices"
RATE_PLACES = Decimal("0.000001")
MONEY_PLACES = Decimal("0.0001")

# --- runs --------------------------------------------------------------------------------------------


async def request_run(session: AsyncSession, caller: Caller, body: RunCreate) -> tuple[ReconciliationRun, bool]:
    """Queue a full run, or return the full run already queued or running (``created`` is then False)."""
    if body.kind != RunKind.full:
        raise invalid_field(["body", "kind"], "only full runs can be requested; imports start incremental ones")
    active = await repo.runs.active_full_run(session, caller.account_id)
    if active is not None:
        return active, False
    run = repo.runs.add(
        session,
        caller.account_id,
        ReconciliationRun(
            id=uuid.uuid4(), kind=RunKind.full, status=RunStatus.queued, requested_by=caller.credential_id
        ),
    )
    await session.flush()
    await session.refresh(run)
    enqueue_after_commit(session, JOB_NAME, str(caller.account_id), None, str(run.id), job_id=f"{JOB_NAME}:{run.id}")
    return run, True


async def get_run(session: AsyncSession, caller: Caller, run_id: uuid.UUID) -> ReconciliationRun:
    return await repo.runs.get(session, caller.account_id, run_id)


@dataclass
class MatchResult:
    invoices_matched: int = 0
    newly_unexplained: int = 0
    unmatched_payments: int = 0
    journal_lines: int = 0
    facts_applied: bool = False
    timings_ms: dict[str, int] = field(default_factory=dict)


async def match(session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID | None) -> MatchResult:
    """Re-match the invoices an import touched (or all), refresh every derived table, journalise new entries.

    Idempotent: balances and rollups are recomputed from the ledger, an import's entries enter the trend
    facts once, and each ledger entry is journalised once. One run per account at a time (advisory lock).
    """
    result = MatchResult()
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings_ms[name] = round((now - clock) * 1000)
        clock = now

    await repo.lock_account(session, account_id)
    matching = repo.Matching(session, account_id, import_id)
    await matching.prepare()
    await matching.compute()
    lap("compute")
    newly = await matching.record_newly_unexplained(EventType.reconciliation_unexplained_short_payment.value)
    await announce(session, account_id, newly)
    result.newly_unexplained = len(newly)
    lap("events")
    await matching.save_balances()
    result.invoices_matched = await matching.count_matched()
    lap("balances")
    await matching.save_rollups()
    lap("rollups")
    result.unmatched_payments = await matching.refresh_unmatched()
    lap("unmatched_payments")
    result.facts_applied = await matching.refresh_facts()
    lap("facts")
    result.journal_lines = await matching.journalise()
    lap("journal")
    await matching.finish()
    return result


# --- invoices --------------------------------------------------------------------------------------------


def balance_out(b: InvoiceBalance) -> InvoiceBalanceOut:
    c = b.currency
    return InvoiceBalanceOut(
        invoice_number=b.invoice_number,
        invoice_id=b.invoice_id,
        status=b.status,
        currency=c,
        invoice_date=b.invoice_date,
        due_on=b.due_on,
        po_number=b.po_number,
        store_id=b.store_id,
        vendor_code=b.vendor_code,
        invoiced=money(b.invoiced, c),
        paid=money(b.paid, c),
        deducted=money(b.deducted, c),
        deductions={k: money(Decimal(v), c) for k, v in sorted(b.deductions.items())},
        reversed=money(b.reversed, c),
        written_off=money(b.written_off, c),
        disputed=money(b.disputed, c),
        open_balance=money(b.open_balance, c),
        open_deductions=money(b.open_deductions, c),
        unconverted_entries=b.unconverted_entries,
        entry_count=b.entry_count,
        last_activity_on=b.last_activity_on,
    )


def _encode(payload: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("not a pair")
        return value
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise invalid_field(["query", "cursor"], "not a cursor this API issued", "cursor_invalid") from exc


async def list_invoices(
    session: AsyncSession, caller: Caller, filters: repo.BalanceFilters, *, limit: int, cursor: str | None
) -> tuple[list[InvoiceBalanceOut], str | None, bool]:
    after: tuple[date, str] | None = None
    if cursor:
        raw = _decode(cursor)
        try:
            after = (date.fromisoformat(raw[0]), str(raw[1]))
        except (TypeError, ValueError) as exc:
            raise invalid_field(["query", "cursor"], "not a cursor this API issued", "cursor_invalid") from exc
    rows = await repo.balances_page(session, caller.account_id, filters, after=after, limit=limit)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode([rows[-1].invoice_date.isoformat(), rows[-1].invoice_number]) if has_more else None
    return [balance_out(r) for r in rows], next_cursor, has_more


CSV_COLUMNS = [
    "invoice_number",
    "status",
    "currency",
    "invoice_date",
    "due_on",
    "po_number",
    "store_id",
    "vendor_code",
    "invoiced",
    "paid",
    "deducted",
    "reversed",
    "written_off",
    "disputed",
    "open_balance",
    "open_deductions",
    "deductions",
]


def csv_values(b: InvoiceBalance) -> list[Any]:
    deductions = ";".join(f"{k}={v}" for k, v in sorted(b.deductions.items()))
    return [
        b.invoice_number,
        b.status,
        b.currency,
        b.invoice_date.isoformat(),
        b.due_on.isoformat() if b.due_on else "",
        b.po_number or "",
        str(b.store_id) if b.store_id else "",
        b.vendor_code or "",
        *(
            format(v, "f")
            for v in (
                b.invoiced,
                b.paid,
                b.deducted,
                b.reversed,
                b.written_off,
                b.disputed,
                b.open_balance,
                b.open_deductions,
            )
        ),
        deductions,
    ]


# --- summary -----------------------------------------------------------------------------------------------


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    if not denominator:
        return None
    return (numerator / denominator).quantize(Decimal("0.0001"))


async def summary(
    session: AsyncSession,
    caller: Caller,
    *,
    group_by: str,
    date_from: date | None,
    date_to: date | None,
    store_id: uuid.UUID | None,
    vendor_code: str | None,
    report_currency: str | None,
) -> SummaryOut:
    """Totals per group and currency; with ``report_currency``, converted at the remittances' own rates."""
    if date_from and date_to and date_from > date_to:
        raise invalid_field(["query", "to"], "must not be before `from`")
    rows = await repo.summary_rows(
        session,
        caller.account_id,
        group_by=group_by,
        date_from=date_from,
        date_to=date_to,
        store_id=store_id,
        vendor_code=vendor_code,
    )
    labels: dict[uuid.UUID, str] = {}
    if group_by == "store":
        labels = await repo.store_labels(session, caller.account_id, [r.grp for r in rows])
    by_type = group_by == "deduction_type"
    measures = (
        "invoiced",
        "paid",
        "deducted",
        "reversed",
        "written_off",
        "disputed",
        "open_balance",
        "unexplained_short",
    )

    rates: dict[str, Decimal] = {}
    rates_used: list[RateUsed] = []
    if report_currency:
        foreign = sorted({r.currency for r in rows if r.currency != report_currency})
        found = await repo.exchange_rates(session, caller.account_id, foreign, report_currency)
        missing = [c for c in foreign if c not in found]
        if missing:
            raise invalid_field(
                ["query", "report_currency"],
                f"no exchange rate from {', '.join(missing)} to {report_currency} in the imported remittances",
                "exchange_rate_unknown",
            )
        for c in foreign:
            rate_row = found[c]
            rates[c] = Decimal(rate_row.rate)
            rates_used.append(
                RateUsed(
                    from_currency=c,
                    to_currency=report_currency,
                    rate=Decimal(rate_row.rate).quantize(RATE_PLACES),
                    payment_number=rate_row.payment_number,
                    payment_date=rate_row.payment_date,
                )
            )

    # (group, currency) → sums; converting folds every currency of a group into the report currency
    totals: dict[tuple[str | None, str], dict[str, Decimal]] = {}
    for r in rows:
        grp = r.grp
        key_text = None if grp in (None, "", NO_STORE) else str(grp)
        currency = report_currency or r.currency
        rate = Decimal(1) if not report_currency or r.currency == report_currency else rates[r.currency]
        sums = totals.setdefault((key_text, currency), {k: Decimal(0) for k in (*measures, "invoice_count")})
        sums["invoice_count"] += Decimal(r.invoice_count or 0)
        for name in measures:
            sums[name] += (Decimal(getattr(r, name) or 0) * rate).quantize(MONEY_PLACES)

    out_rows: list[SummaryRow] = []
    for (grp_key, currency), s in totals.items():

        def m(name: str, cur: str = currency, sums: dict[str, Decimal] = s) -> Money | None:
            return None if by_type else money(sums[name], cur)

        gross = s["deducted"] + s["written_off"]
        out_rows.append(
            SummaryRow(
                group=grp_key,
                label=labels.get(uuid.UUID(grp_key)) if group_by == "store" and grp_key else None,
                currency=currency,
                invoice_count=int(s["invoice_count"]),
                invoiced=m("invoiced"),
                paid=m("paid"),
                deducted=money(s["deducted"], currency),
                disputed=m("disputed"),
                recovered=m("reversed"),
                written_off=m("written_off"),
                open_balance=m("open_balance"),
                unexplained_short=m("unexplained_short"),
                recovery_rate=None if by_type else _ratio(s["reversed"], gross),
            )
        )
    out_rows.sort(key=lambda row: (row.group or "", row.currency))
    return SummaryOut(
        date_from=date_from,
        date_to=date_to,
        group_by=group_by,
        report_currency=report_currency,
        rates_used=rates_used,
        rows=out_rows,
    )


BUCKET_ORDER = ["not_due", "0_30", "31_60", "61_90", "90_plus"]


async def aging(
    session: AsyncSession, caller: Caller, *, as_of: date | None, store_id: uuid.UUID | None, vendor_code: str | None
) -> AgingOut:
    day = as_of or utcnow().date()
    rows = await repo.aging_rows(session, caller.account_id, as_of=day, store_id=store_id, vendor_code=vendor_code)
    out = [
        AgingRow(
            bucket=r.bucket,
            currency=r.currency,
            open_balance=money(r.open_balance, r.currency),
            open_deductions=money(r.open_deductions, r.currency),
            unexplained_short=money(r.unexplained_short, r.currency),
        )
        for r in rows
    ]
    out.sort(key=lambda a: (a.currency, BUCKET_ORDER.index(a.bucket.value)))
    return AgingOut(as_of=day, rows=out)


# --- unmatched payments, suggestions, journal ---------------------------------------------------------------


async def list_unmatched(session: AsyncSession, caller: Caller, *, limit: int, cursor: str | None) -> UnmatchedPage:
    from datetime import datetime

    after: tuple[Any, uuid.UUID] | None = None
    if cursor:
        raw = _decode(cursor)
        try:
            after = (datetime.fromisoformat(raw[0]), uuid.UUID(raw[1]))
        except (TypeError, ValueError) as exc:
            raise invalid_field(["query", "cursor"], "not a cursor this API issued", "cursor_invalid") from exc
    rows = await repo.unmatched_page(session, caller.account_id, after=after, limit=limit)
    has_more = len(rows) > limit
    rows = rows[:limit]
    data = [
        UnmatchedPaymentOut(
            payment_line_id=u.payment_line_id,
            payment_number=u.payment_number,
            invoice_number=u.invoice_number,
            payment_date=u.payment_date,
            po_number=u.po_number,
            amount=money(u.amount, u.currency),
            candidates=[
                Candidate(
                    invoice_number=c["invoice_number"],
                    open_balance=money(Decimal(c["open_balance"]), c["currency"]),
                    invoice_date=c["invoice_date"],
                    due_on=c.get("due_on"),
                    po_number=c.get("po_number"),
                    score=Decimal(str(c["score"])),
                    reasons=c["reasons"],
                )
                for c in u.candidates
            ],
        )
        for u in rows
    ]
    next_cursor = _encode([rows[-1].created_at.isoformat(), str(rows[-1].payment_line_id)]) if has_more else None
    return UnmatchedPage(data=data, next_cursor=next_cursor, has_more=has_more)


def _reason(row: Any) -> str:
    amount = f"{row.amount:.2f} {row.currency}"
    if row.kind == SuggestionKind.dispute_case:
        deadline = f" before {row.due.isoformat()}" if row.due else ""
        evidence = " (evidence ready)" if row.state == "ready_to_dispute" else ""
        return f"Dispute {row.detail} case {row.subject_id}{deadline}{evidence}: {amount} deducted."
    if row.kind == SuggestionKind.redispute_case:
        return f"Re-dispute partially recovered {row.detail} case {row.subject_id}: {amount} still outstanding."
    if row.kind == SuggestionKind.chase_unpaid:
        return f"Chase unpaid invoice {row.invoice_number}, due {row.due.isoformat()}: {amount} open."
    if row.kind == SuggestionKind.investigate_short:
        return f"Investigate unexplained short payment on invoice {row.invoice_number}: {amount} missing."
    return f"Match payment {row.state} line for unknown invoice {row.detail} to invoice {row.invoice_number}: {amount}."


async def suggestions(
    session: AsyncSession, caller: Caller, *, limit: int, kinds: list[SuggestionKind] | None
) -> SuggestionList:
    """The to-do list: every open action with money at stake, the largest first."""
    today = utcnow().date()
    rows = await repo.suggestions(
        session, caller.account_id, today=today, limit=limit, kinds=[k.value for k in kinds] if kinds else None
    )
    return SuggestionList(
        as_of=today,
        data=[
            SuggestionOut(
                rank=i,
                kind=r.kind,
                reason=_reason(r),
                amount_at_stake=money(r.amount, r.currency),
                subject_id=r.subject_id,
                invoice_number=r.invoice_number,
                due=r.due,
            )
            for i, r in enumerate(rows, start=1)
        ],
    )


def journal_lines(entry: JournalEntry) -> list[JournalLineOut]:
    """The two balanced lines of a journalised ledger entry (debits positive, credits negative).

    A payment: cash +, receivable −. A deduction: deduction expense (by type) +, receivable −. A reversal:
    receivable +, recovery income − (against the type of deduction it reverses).
    """
    entry_type = entry.entry_type
    if entry_type == EntryType.payment:
        category, deduction_type = JournalCategory.cash, None
    elif entry_type in REVERSAL_OF:
        category, deduction_type = JournalCategory.recovery_income, str(REVERSAL_OF[EntryType(entry_type)])
    else:
        category, deduction_type = JournalCategory.deduction_expense, entry_type
    common = {
        "entry_date": entry.entry_date,
        "currency": entry.currency,
        "ledger_entry_id": entry.ledger_entry_id,
        "entry_type": entry_type,
        "invoice_number": entry.invoice_number,
        "payment_number": entry.payment_number,
        "reference": entry.reference,
        "store_id": entry.store_id,
    }
    return [
        JournalLineOut(
            seq=entry.seq,
            cursor=str(entry.seq),
            category=category,
            deduction_type=deduction_type,
            amount=-entry.amount,
            **common,
        ),
        JournalLineOut(
            seq=entry.seq + 1,
            cursor=str(entry.seq + 1),
            category=JournalCategory.receivable,
            deduction_type=None,
            amount=entry.amount,
            **common,
        ),
    ]


async def journal(session: AsyncSession, caller: Caller, *, since_cursor: str | None, limit: int) -> JournalPage:
    since = 0
    if since_cursor:
        if not since_cursor.isdigit() or len(since_cursor) > 18:
            raise invalid_field(["query", "since_cursor"], "not a cursor this API issued", "cursor_invalid")
        since = int(since_cursor)
    entries = await repo.journal_after(session, caller.account_id, since, limit)
    lines = [line for entry in entries for line in journal_lines(entry) if line.seq > since]
    data = lines[:limit]
    return JournalPage(data=data, next_cursor=data[-1].cursor if data else str(since), has_more=len(lines) > limit)


# --- analytics -------------------------------------------------------------------------------------------


def _month(value: date | None) -> date | None:
    return value.replace(day=1) if value else None


async def deduction_trends(
    session: AsyncSession,
    caller: Caller,
    *,
    interval: str,
    group_by: str,
    date_from: date | None,
    date_to: date | None,
) -> DeductionTrends:
    rows = await repo.deduction_trends(
        session,
        caller.account_id,
        interval=interval,
        group_by=group_by,
        month_from=_month(date_from),
        month_to=_month(date_to),
    )
    data = []
    for r in rows:
        deducted = Decimal(r.deducted)
        recovered = Decimal(r.recovered)
        invoiced = Decimal(r.invoiced)
        grp = r.grp if r.grp not in ("", str(NO_STORE)) else None
        data.append(
            DeductionTrendPoint(
                period=r.period,
                group=grp,
                currency=r.currency,
                deducted=money(deducted, r.currency),
                count=int(r.deduction_count),
                recovered=money(recovered, r.currency),
                recovery_rate=_ratio(recovered, deducted),
                invoiced=money(invoiced, r.currency),
                share_of_invoiced=_ratio(deducted, invoiced),
            )
        )
    return DeductionTrends(interval=interval, group_by=group_by, data=data)


async def purchase_order_trends(
    session: AsyncSession,
    caller: Caller,
    *,
    interval: str,
    by_asin: bool,
    asin: str | None,
    date_from: date | None,
    date_to: date | None,
) -> PurchaseOrderTrends:
    rows = await repo.purchase_order_trends(
        session,
        caller.account_id,
        interval=interval,
        by_asin=by_asin,
        asin=asin,
        month_from=_month(date_from),
        month_to=_month(date_to),
    )
    data = []
    for r in rows:
        ordered = int(r.ordered_units)
        currency = r.currency or None
        cost = Decimal(r.ordered_cost)
        costed = int(r.costed_units)
        data.append(
            PurchaseOrderTrendPoint(
                period=r.period,
                asin=r.asin or None,
                currency=currency,
                items=int(r.item_count),
                ordered_units=ordered,
                acknowledged_units=int(r.acknowledged_units),
                received_units=int(r.received_units),
                acknowledgement_rate=_ratio(Decimal(r.acknowledged_units), Decimal(ordered)),
                fill_rate=_ratio(Decimal(r.received_units), Decimal(ordered)),
                ordered_cost=money(cost, currency) if currency else None,
                average_unit_cost=money((cost / costed).quantize(MONEY_PLACES), currency)
                if currency and costed
                else None,
            )
        )
    return PurchaseOrderTrends(interval=interval, data=data)
