"""Every query of reconciliation, always scoped to one account (``:account_id`` in every statement)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Row, String, and_, case, func, literal, or_, select, text, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.errors import NotFound
from acorn_api.ledger.models import REVERSAL_OF
from acorn_api.reconciliation import matching_sql as sql
from acorn_api.reconciliation.models import (
    NO_STORE,
    BalanceRollup,
    InvoiceBalance,
    JournalEntry,
    ReconciliationRun,
    RunKind,
    RunStatus,
    UnmatchedPayment,
)
from acorn_api.stores.models import Store

# --- runs ------------------------------------------------------------------------------------------------


class RunRepository:
    async def get(self, session: AsyncSession, account_id: uuid.UUID, run_id: uuid.UUID) -> ReconciliationRun:
        run = await session.scalar(
            select(ReconciliationRun).where(ReconciliationRun.account_id == account_id, ReconciliationRun.id == run_id)
        )
        if run is None:
            raise NotFound("No such reconciliation run.")
        return run

    async def get_for_update(
        self, session: AsyncSession, account_id: uuid.UUID, run_id: uuid.UUID
    ) -> ReconciliationRun | None:
        run: ReconciliationRun | None = await session.scalar(
            select(ReconciliationRun)
            .where(ReconciliationRun.account_id == account_id, ReconciliationRun.id == run_id)
            .with_for_update()
        )
        return run

    async def active_full_run(self, session: AsyncSession, account_id: uuid.UUID) -> ReconciliationRun | None:
        run: ReconciliationRun | None = await session.scalar(
            select(ReconciliationRun)
            .where(
                ReconciliationRun.account_id == account_id,
                ReconciliationRun.kind == RunKind.full,
                ReconciliationRun.status.in_([RunStatus.queued, RunStatus.running]),
            )
            .order_by(ReconciliationRun.created_at)
            .limit(1)
        )
        return run

    async def unfinished_incremental_for_update(
        self, session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID
    ) -> ReconciliationRun | None:
        """The import's incremental run that a killed worker left queued or running, locked (a re-delivery
        of its job finishes that run instead of leaving it ``running`` for ever beside a new one)."""
        run: ReconciliationRun | None = await session.scalar(
            select(ReconciliationRun)
            .where(
                ReconciliationRun.account_id == account_id,
                ReconciliationRun.import_id == import_id,
                ReconciliationRun.kind == RunKind.incremental,
                ReconciliationRun.status.in_([RunStatus.queued, RunStatus.running]),
            )
            .order_by(ReconciliationRun.created_at)
            .limit(1)
            .with_for_update()
        )
        return run

    def add(self, session: AsyncSession, account_id: uuid.UUID, run: ReconciliationRun) -> ReconciliationRun:
        run.account_id = account_id
        session.add(run)
        return run


runs = RunRepository()

# --- matching --------------------------------------------------------------------------------------------


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> None:
    """One matching run per account at a time (the journal's sequence relies on it)."""
    digest = hashlib.sha256(f"reconciliation:{account_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def import_exists(session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID) -> bool:
    found = await session.scalar(
        text("SELECT 1 FROM imports WHERE account_id = :account_id AND id = :import_id"),
        {"account_id": account_id, "import_id": import_id},
    )
    return found is not None


MATCHING_WORK_MEM = "128MB"
ANALYZE_BASE_THRESHOLD = 50
ANALYZE_SCALE_FACTOR = 0.1


class Matching:
    """The statements of one matching run, in the order the service calls them."""

    def __init__(self, session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID | None) -> None:
        self.session = session
        self.params: dict[str, Any] = {"account_id": account_id, "import_id": import_id}
        self.scoped = import_id is not None
        self.previous_rows = 0
        self.matched: int | None = None

    async def _run(self, statement: str, params: dict[str, Any] | None = None) -> int:
        result = await self.session.execute(text(statement), self.params if params is None else params)
        return int(getattr(result, "rowcount", 0) or 0)

    async def prepare(self) -> None:
        # one round trip for the run's planner settings, local to its transaction:
        # * work_mem: a batch job grouping up to millions of rows hashes in memory instead of spilling to disk;
        # * jit off: JIT-compiling these wide aggregates costs seconds (measured: 8 s of an 18 s run), saves less;
        # * random_page_cost (incremental): a few thousand invoices of millions are index probes, which the
        #   default cost model underrates for a ledger that lives in memory
        await self._run(
            sql.SESSION_SETTINGS,
            {"work_mem": MATCHING_WORK_MEM, "random_page_cost": "1.1" if self.scoped else None},
        )
        await self._run(sql.CREATE_WORK_TABLE)
        if self.scoped:
            # an array of the touched numbers lets every scoped statement probe the (account, invoice) indexes
            touched = await self.session.scalars(text(sql.TOUCHED_BY_IMPORT), self.params)
            self.params["numbers"] = list(touched)

    async def compute(self) -> None:
        """Compute every invoice in scope; only those whose balance changed land in ``rec_new``."""
        await self._run(sql.compute_balances(self.scoped))
        if not self.scoped:
            # the few invoices with entries in another currency: their rows are placeholders until this
            # scoped pass sums them entry by entry with the remittances' rates
            pending = list(await self.session.scalars(text(sql.CONVERSION_PENDING_NUMBERS), self.params))
            if pending:
                await self._run(sql.compute_balances(True), {**self.params, "numbers": pending})
            # up to a million rows: the statements joining rec_new need its real size and distributions
            await self._run("ANALYZE rec_new")
        # (an incremental run's few thousand rows are planned from the table's size without statistics:
        # the same plans - index probes per row - at none of ANALYZE's cost, ~30 ms at load 4-7)

    async def count_matched(self) -> int:
        """The invoices in scope that have a balance, once the balances are saved (counted once per run)."""
        if self.matched is None:
            scope = "AND b.invoice_number = ANY(CAST(:numbers AS varchar[]))" if self.scoped else ""
            self.matched = int(
                await self.session.scalar(text(sql.COUNT_BALANCES.format(scope=scope)), self.params) or 0
            )
        return self.matched

    async def record_newly_unexplained(self, event_type: str) -> list[uuid.UUID]:
        """Record an event for each invoice this run makes ``unexplained_short`` (before the balances are saved)."""
        ids = await self.session.scalars(text(sql.RECORD_NEWLY_UNEXPLAINED), {**self.params, "event_type": event_type})
        return list(ids)

    async def save_balances(self) -> None:
        if self.scoped:
            # the rollup delta subtracts what these rows were (none: the import's invoices are all new)
            self.previous_rows = await self._run(sql.SAVE_PREVIOUS)
        written = await self._run(sql.UPSERT_BALANCES)
        if not self.scoped and await self._statistics_stale(written):
            # A full run may have written most of the table (an account's first run: all of it). The statements
            # after it join invoice_balances (unmatched payments, the rollup rebuild) and would otherwise be
            # planned for the table as it was when last analysed: measured at a million invoices, the
            # candidate search ran for minutes with "empty table" estimates and 7 s with fresh ones.
            await self._run("ANALYZE invoice_balances")

    async def _statistics_stale(self, written: int) -> bool:
        """Whether ``written`` new or changed balances outdate the statistics the next statements are planned with.

        autovacuum's rule (more than 50 rows + 10 % of the rows), against the account's balances, since every
        statement here reads one account: a re-run that changed a few invoices skips an ANALYZE of the whole
        table (0.5 s at a million invoices, measured), while an account's first run (all of its rows new, more
        than 50) analyses. The count is the one the run reports anyway (``count_matched``): no extra query.
        """
        return written > ANALYZE_BASE_THRESHOLD + ANALYZE_SCALE_FACTOR * await self.count_matched()

    async def save_rollups(self) -> None:
        if self.scoped:
            await self._run(sql.APPLY_ROLLUP_DELTA)
            if self.previous_rows:  # only rows something was subtracted from can have dropped to zero
                await self._run(sql.DELETE_EMPTY_ROLLUPS)
        else:
            for statement in sql.REBUILD_ROLLUPS:
                await self._run(statement)

    async def refresh_unmatched(self) -> int:
        deleted_then_inserted = [await self._run(s) for s in sql.refresh_unmatched(self.scoped)]
        return deleted_then_inserted[-1]

    async def refresh_facts(self) -> bool:
        if self.scoped:
            # False: this import's entries were already counted
            return bool(await self.session.scalar(text(sql.ADD_IMPORT_FACTS), self.params))
        for statement in sql.REBUILD_FACTS:
            await self._run(statement)
        for statement in sql.REBUILD_PO_FACTS:
            await self._run(statement)
        return True

    async def journalise(self) -> int:
        """Journalise the run's new ledger entries; returns the feed lines added (two per entry)."""
        return 2 * await self._run(sql.journalise(self.scoped))

    async def finish(self) -> None:
        await self._run(sql.DROP_WORK_TABLES)


# --- reads -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceFilters:
    status: list[str] | None = None
    store_id: uuid.UUID | None = None
    vendor_code: str | None = None
    currency: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    min_open_balance: Decimal | None = None


def _balances_stmt(account_id: uuid.UUID, f: BalanceFilters) -> Any:
    stmt = select(InvoiceBalance).where(InvoiceBalance.account_id == account_id)
    if f.status:
        stmt = stmt.where(InvoiceBalance.status.in_(f.status))
    if f.store_id is not None:
        stmt = stmt.where(InvoiceBalance.store_id == f.store_id)
    if f.vendor_code is not None:
        stmt = stmt.where(InvoiceBalance.vendor_code == f.vendor_code)
    if f.currency is not None:
        stmt = stmt.where(InvoiceBalance.currency == f.currency)
    if f.date_from is not None:
        stmt = stmt.where(InvoiceBalance.invoice_date >= f.date_from)
    if f.date_to is not None:
        stmt = stmt.where(InvoiceBalance.invoice_date <= f.date_to)
    if f.min_open_balance is not None:
        stmt = stmt.where(InvoiceBalance.open_balance >= f.min_open_balance)
    return stmt


async def balances_page(
    session: AsyncSession,
    account_id: uuid.UUID,
    f: BalanceFilters,
    *,
    after: tuple[date, str] | None,
    limit: int,
) -> list[InvoiceBalance]:
    """Newest invoice first; keyset on ``(invoice_date, invoice_number)``; ``limit + 1`` rows."""
    stmt = _balances_stmt(account_id, f)
    if after is not None:
        stmt = stmt.where(tuple_(InvoiceBalance.invoice_date, InvoiceBalance.invoice_number) < tuple_(*after))
    stmt = stmt.order_by(InvoiceBalance.invoice_date.desc(), InvoiceBalance.invoice_number.desc()).limit(limit + 1)
    return list((await session.scalars(stmt)).all())


async def stream_balances(
    session: AsyncSession, account_id: uuid.UUID, f: BalanceFilters, *, batch: int = 2000
) -> AsyncIterator[list[InvoiceBalance]]:
    """Every matching balance, newest first, in keyset batches (memory stays flat for any size)."""
    after: tuple[date, str] | None = None
    while True:
        rows = await balances_page(session, account_id, f, after=after, limit=batch - 1)
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        after = (rows[-1].invoice_date, rows[-1].invoice_number)
        session.expunge_all()


async def get_balance(session: AsyncSession, account_id: uuid.UUID, invoice_number: str) -> InvoiceBalance:
    row = await session.scalar(
        select(InvoiceBalance).where(
            InvoiceBalance.account_id == account_id, InvoiceBalance.invoice_number == invoice_number
        )
    )
    if row is None:
        raise NotFound("No such invoice in the reconciliation.")
    return row


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def _invoice_period(date_from: date | None, date_to: date | None) -> list[Any]:
    """Rollup rows covering invoice dates in ``[from, to]``: month rows for whole months, day rows at the edges.

    One condition per index range on (account, grain, deduction type, period); the caller reads each range
    on its own (UNION ALL), because one OR across grains may be planned as a scan of every rollup row.
    """
    r = BalanceRollup
    first_full = None if date_from is None else (date_from if date_from.day == 1 else _next_month(date_from))
    after_full = (
        None
        if date_to is None
        else (_next_month(date_to) if _next_month(date_to) - timedelta(days=1) == date_to else _month_start(date_to))
    )
    if first_full is not None and after_full is not None and first_full >= after_full:
        # no whole month in the range: day rows only
        return [and_(r.grain == "day", r.period >= date_from, r.period <= date_to)]
    # whole months: first_full <= period < after_full
    month_rows = [r.grain == "month"]
    if first_full is not None:
        month_rows.append(r.period >= first_full)
    if after_full is not None:
        month_rows.append(r.period < after_full)
    ranges = [and_(*month_rows)]
    if date_from is not None and first_full is not None and first_full > date_from:
        ranges.append(and_(r.grain == "day", r.period >= date_from, r.period < first_full))
    if date_to is not None and after_full is not None and after_full <= date_to:
        ranges.append(and_(r.grain == "day", r.period >= after_full, r.period <= date_to))
    return ranges


_SUMMARY_MEASURES = (
    "invoice_count",
    "invoiced",
    "paid",
    "deducted",
    "reversed",
    "written_off",
    "disputed",
    "open_balance",
    "unexplained_short",
)


async def summary_rows(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    group_by: str,
    date_from: date | None,
    date_to: date | None,
    store_id: uuid.UUID | None,
    vendor_code: str | None,
) -> Sequence[Row[Any]]:
    """Rollup sums per (group, currency) over invoice dates in the range."""
    r = BalanceRollup

    def part(period: Any) -> Any:
        stmt = select(
            r.store_id,
            r.vendor_code,
            r.period,
            r.deduction_type,
            r.currency,
            *(getattr(r, m) for m in _SUMMARY_MEASURES),
        ).where(
            r.account_id == account_id,
            period,
            # per-type rows carry only deductions; the '' row of each key carries the invoice totals
            r.deduction_type != "" if group_by == "deduction_type" else r.deduction_type == "",
        )
        if store_id is not None:
            stmt = stmt.where(r.store_id == store_id)
        if vendor_code is not None:
            stmt = stmt.where(r.vendor_code == vendor_code)
        return stmt

    rows = union_all(*(part(p) for p in _invoice_period(date_from, date_to))).subquery()
    keys: dict[str, Any] = {
        "none": literal("all", String),
        "store": rows.c.store_id,
        "region": Store.region,
        "marketplace": Store.marketplace,
        "vendor_code": rows.c.vendor_code,
        "month": func.to_char(rows.c.period, "YYYY-MM"),
        "deduction_type": rows.c.deduction_type,
    }
    group_expr = keys[group_by].label("grp")
    stmt: Any = (
        select(group_expr, rows.c.currency, *(func.sum(rows.c[m]).label(m) for m in _SUMMARY_MEASURES))
        .group_by(group_expr, rows.c.currency)
        .order_by(group_expr, rows.c.currency)
    )
    if group_by in ("region", "marketplace"):
        stmt = stmt.select_from(rows).outerjoin(
            Store, and_(Store.account_id == account_id, Store.id == rows.c.store_id)
        )
    return (await session.execute(stmt)).all()


async def store_labels(session: AsyncSession, account_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = [i for i in ids if i != NO_STORE]
    if not wanted:
        return {}
    rows = await session.execute(
        select(Store.id, Store.code).where(Store.account_id == account_id, Store.id.in_(wanted))
    )
    return {row.id: row.code for row in rows}


async def exchange_rates(
    session: AsyncSession, account_id: uuid.UUID, currencies: list[str], target: str
) -> dict[str, Row[Any]]:
    """For each currency, the latest remittance rate to (or from) ``target``: the rates the files used."""
    rows = await session.execute(
        text(
            """
SELECT DISTINCT ON (src) src, rate, payment_number, payment_date, inverted FROM (
    SELECT p.currency AS src, p.exchange_rate AS rate, p.payment_number, p.payment_date, false AS inverted
    FROM payments p
    WHERE p.account_id = :account_id AND p.payment_currency = :target AND p.currency = ANY(:currencies)
        AND p.exchange_rate > 0
    UNION ALL
    SELECT p.payment_currency, 1 / p.exchange_rate, p.payment_number, p.payment_date, true
    FROM payments p
    WHERE p.account_id = :account_id AND p.currency = :target AND p.payment_currency = ANY(:currencies)
        AND p.exchange_rate > 0
) r
ORDER BY src, payment_date DESC NULLS LAST, payment_number DESC
"""
        ),
        {"account_id": account_id, "target": target, "currencies": currencies},
    )
    return {row.src: row for row in rows}


def age_bucket(as_of: date, due: date) -> str:
    days = (as_of - due).days
    if days < 0:
        return "not_due"
    if days <= 30:
        return "0_30"
    if days <= 60:
        return "31_60"
    if days <= 90:
        return "61_90"
    return "90_plus"


def _straddling_months(as_of: date) -> list[date]:
    """Months of due dates whose days fall in more than one age bucket (at most five)."""
    months = {_month_start(as_of + timedelta(days=k)) for k in (1, 0, -30, -31, -60, -61, -90, -91)}
    return sorted(m for m in months if age_bucket(as_of, m) != age_bucket(as_of, _next_month(m) - timedelta(days=1)))


async def aging_rows(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    as_of: date,
    store_id: uuid.UUID | None,
    vendor_code: str | None,
) -> Sequence[Row[Any]]:
    """Open amounts per (age bucket, currency): month rows where a whole month is one bucket, else day rows.

    Two index ranges on the rollups' key (account, grain, deduction type, period), joined by UNION ALL: one
    predicate OR-ing the grains let the planner fall back to scanning every rollup row of the account (all
    grains, ~100 ms at a million invoices) whenever its statistics were stale.
    """
    r = BalanceRollup
    straddling = _straddling_months(as_of)

    def part(grain: str, *conditions: Any) -> Any:
        stmt = select(r.period, r.currency, r.open_balance, r.open_deductions, r.unexplained_short).where(
            r.account_id == account_id,
            r.grain == grain,
            r.deduction_type == "",
            or_(r.open_balance != 0, r.open_deductions != 0),
            *conditions,
        )
        if store_id is not None:
            stmt = stmt.where(r.store_id == store_id)
        if vendor_code is not None:
            stmt = stmt.where(r.vendor_code == vendor_code)
        return stmt

    parts = [part("due_month", r.period.not_in(straddling))]
    if straddling:
        parts.append(
            part(
                "due_day",
                r.period >= straddling[0],
                r.period < _next_month(straddling[-1]),
                or_(*(and_(r.period >= m, r.period < _next_month(m)) for m in straddling)),
            )
        )
    rows = union_all(*parts).subquery()
    days = literal(as_of, Date) - rows.c.period
    bucket = case(
        (days < 0, "not_due"),
        (days <= 30, "0_30"),
        (days <= 60, "31_60"),
        (days <= 90, "61_90"),
        else_="90_plus",
    ).label("bucket")
    stmt: Any = select(
        bucket,
        rows.c.currency,
        func.sum(rows.c.open_balance).label("open_balance"),
        func.sum(rows.c.open_deductions).label("open_deductions"),
        func.sum(rows.c.unexplained_short).label("unexplained_short"),
    ).group_by(bucket, rows.c.currency)
    return (await session.execute(stmt)).all()


async def unmatched_page(
    session: AsyncSession, account_id: uuid.UUID, *, after: tuple[Any, uuid.UUID] | None, limit: int
) -> list[UnmatchedPayment]:
    u = UnmatchedPayment
    stmt = select(u).where(u.account_id == account_id)
    if after is not None:
        stmt = stmt.where(tuple_(u.created_at, u.payment_line_id) < tuple_(*after))
    stmt = stmt.order_by(u.created_at.desc(), u.payment_line_id.desc()).limit(limit + 1)
    return list((await session.scalars(stmt)).all())


async def journal_after(session: AsyncSession, account_id: uuid.UUID, since: int, limit: int) -> list[JournalEntry]:
    """The journalised entries holding the first ``limit`` feed lines after line ``since`` (and one line more,
    when there is one, to tell the caller whether more follow).

    An entry's lines are ``seq`` and ``seq + 1``, so the entry whose second line is ``since`` + 1 comes first.
    """
    stmt = (
        select(JournalEntry)
        .where(JournalEntry.account_id == account_id, JournalEntry.seq >= since)
        .order_by(JournalEntry.seq)
        .limit(limit // 2 + 2)
    )
    return list((await session.scalars(stmt)).all())


SUGGESTIONS_SQL = """
SELECT * FROM (
    SELECT 'dispute_case' AS kind, c.id::text AS subject_id, c.invoice_number, c.currency,
        greatest(c.amount - c.recovered_amount - c.written_off_amount, 0) AS amount,
        c.dispute_deadline AS due, c.type AS detail, c.status AS state
    FROM refund_cases c
    WHERE c.account_id = :account_id AND c.status IN ('open', 'needs_review', 'ready_to_dispute')
        AND NOT c.deadline_missed AND (c.dispute_deadline IS NULL OR c.dispute_deadline >= :today)
    UNION ALL
    SELECT 'redispute_case', c.id::text, c.invoice_number, c.currency,
        greatest(c.amount - c.recovered_amount - c.written_off_amount, 0), c.dispute_deadline, c.type, c.status
    FROM refund_cases c
    WHERE c.account_id = :account_id AND c.status = 'partially_recovered' AND c.dispute_count < 2
        AND NOT c.deadline_missed AND (c.dispute_deadline IS NULL OR c.dispute_deadline >= :today)
    UNION ALL
    SELECT 'chase_unpaid', b.invoice_number, b.invoice_number, b.currency, b.open_balance, b.due_on, NULL, b.status
    FROM invoice_balances b
    WHERE b.account_id = :account_id AND b.status = 'unpaid' AND b.due_on < :today AND b.open_balance > 0
    UNION ALL
    SELECT 'investigate_short', b.invoice_number, b.invoice_number, b.currency, b.open_balance, b.due_on, NULL,
        b.status
    FROM invoice_balances b
    WHERE b.account_id = :account_id AND b.status = 'unexplained_short'
    UNION ALL
    SELECT 'match_payment', u.payment_line_id::text, u.candidates->0->>'invoice_number', u.currency, u.amount,
        u.payment_date, u.invoice_number, u.payment_number
    FROM unmatched_payments u
    WHERE u.account_id = :account_id AND jsonb_array_length(u.candidates) > 0
) s
WHERE s.amount > 0 {kind_filter}
ORDER BY s.amount DESC, s.kind, s.subject_id
LIMIT :limit
"""


async def suggestions(
    session: AsyncSession, account_id: uuid.UUID, *, today: date, limit: int, kinds: list[str] | None
) -> Sequence[Row[Any]]:
    kind_filter = "AND s.kind = ANY(:kinds)" if kinds else ""
    params: dict[str, Any] = {"account_id": account_id, "today": today, "limit": limit}
    if kinds:
        params["kinds"] = kinds
    statement = SUGGESTIONS_SQL.format(kind_filter=kind_filter)
    return (await session.execute(text(statement), params)).all()


def _period(interval: str, column: str) -> str:
    return f"date_trunc('{interval}', {column})::date"


DEDUCTION_GROUPS = {
    "type": "CASE entry_type "
    + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in REVERSAL_OF.items())
    + " ELSE entry_type END",
    "store": "store_id::text",
    "asin": "asin",
    "issue_type": "issue_type",
}


async def deduction_trends(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    interval: str,
    group_by: str,
    month_from: date | None,
    month_to: date | None,
) -> Sequence[Row[Any]]:
    """Per period, group and currency: deducted, count, recovered and the period's invoiced value."""
    deductions = "(" + ", ".join(f"'{t}'" for t in sql.DEDUCTION_LIKE) + ")"
    reversals = "(" + ", ".join(f"'{t}'" for t in sql.REVERSAL_TYPES) + ")"
    # share of invoiced value: against the same store's invoices when grouped by store, else the period's
    inv_key = "store_id::text" if group_by == "store" else "''"
    statement = f"""
WITH f AS (
    SELECT {_period(interval, "month")} AS period, entry_type, store_id, asin, issue_type, currency, amount,
        entry_count
    FROM deduction_facts
    WHERE account_id = :account_id
        AND (CAST(:month_from AS date) IS NULL OR month >= CAST(:month_from AS date))
        AND (CAST(:month_to AS date) IS NULL OR month <= CAST(:month_to AS date))
),
d AS (
    SELECT period, {DEDUCTION_GROUPS[group_by]} AS grp, {inv_key} AS inv_key, currency,
        coalesce(-sum(amount) FILTER (WHERE entry_type IN {deductions}), 0) AS deducted,
        coalesce(sum(entry_count) FILTER (WHERE entry_type IN {deductions}), 0) AS deduction_count,
        coalesce(sum(amount) FILTER (WHERE entry_type IN {reversals}), 0) AS recovered
    FROM f WHERE entry_type IN {deductions} OR entry_type IN {reversals}
    GROUP BY 1, 2, 3, 4
),
inv AS (
    SELECT period, {inv_key} AS inv_key, currency, sum(amount) AS invoiced
    FROM f WHERE entry_type = 'invoice' GROUP BY 1, 2, 3
)
SELECT d.period, d.grp, d.currency, d.deducted, d.deduction_count, d.recovered, coalesce(inv.invoiced, 0) AS invoiced
FROM d LEFT JOIN inv ON inv.period = d.period AND inv.inv_key = d.inv_key AND inv.currency = d.currency
ORDER BY d.period, d.grp, d.currency
"""  # noqa: S608 - only fixed fragments (group expressions, type lists) are interpolated
    params = {"account_id": account_id, "month_from": month_from, "month_to": month_to}
    return (await session.execute(text(statement), params)).all()


async def purchase_order_trends(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    interval: str,
    by_asin: bool,
    asin: str | None,
    month_from: date | None,
    month_to: date | None,
) -> Sequence[Row[Any]]:
    grp = "asin" if by_asin else "''"
    statement = f"""
SELECT {_period(interval, "month")} AS period, {grp} AS asin, currency, sum(item_count) AS item_count,
    sum(ordered_units) AS ordered_units, sum(acknowledged_units) AS acknowledged_units,
    sum(received_units) AS received_units, sum(ordered_cost) AS ordered_cost, sum(costed_units) AS costed_units
FROM purchase_order_facts
WHERE account_id = :account_id
    AND (CAST(:asin AS text) IS NULL OR asin = CAST(:asin AS text))
    AND (CAST(:month_from AS date) IS NULL OR month >= CAST(:month_from AS date))
    AND (CAST(:month_to AS date) IS NULL OR month <= CAST(:month_to AS date))
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""  # noqa: S608 - only fixed fragments are interpolated
    params = {"account_id": account_id, "asin": asin, "month_from": month_from, "month_to": month_to}
    return (await session.execute(text(statement), params)).all()
