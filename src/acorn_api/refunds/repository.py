"""Every query on refund cases, their rules, settings and timeline — scoped to the caller's account.

Case creation, linking and (re)scoring are set-based statements: one statement for any number of cases.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import (
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from acorn_api.amazon.models import PurchaseOrder
from acorn_api.core.errors import invalid_field
from acorn_api.core.repository import AccountScopedRepository
from acorn_api.ledger.models import DEDUCTION_TYPES, REVERSAL_OF, Invoice, LedgerEntry
from acorn_api.refunds.models import CaseEntry, CaseEvent, CaseRule, CaseSettings, CaseStatus, RefundCase
from acorn_api.refunds.policy import (
    DONE_STATUSES,
    RECLASSIFIABLE_STATUSES,
    UNDISPUTED_STATUSES,
    Window,
    score_columns,
    sql_deadline,
    sql_local_today,
)
from acorn_api.refunds.rules import Source, classify
from acorn_api.stores.models import Store
from acorn_api.webhooks.models import Event


class CaseRepository(AccountScopedRepository[RefundCase]):
    model = RefundCase
    not_found_message = "No such refund case."

    async def ledger_entry_ids(self, session: AsyncSession, account_id: uuid.UUID, case: RefundCase) -> list[uuid.UUID]:
        linked = await session.scalars(
            select(CaseEntry.ledger_entry_id)
            .where(CaseEntry.account_id == account_id, CaseEntry.case_id == case.id)
            .order_by(CaseEntry.created_at, CaseEntry.id)
        )
        ids = [case.origin_entry_id]
        ids += [i for i in linked if i != case.origin_entry_id]
        return ids

    async def lock_many(
        self, session: AsyncSession, account_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, RefundCase]:
        """Lock the cases in id order (two bulk requests never deadlock on each other)."""
        rows = await session.scalars(
            self.select(account_id).where(RefundCase.id.in_(list(ids))).order_by(RefundCase.id).with_for_update()
        )
        return {row.id: row for row in rows}


class RuleRepository(AccountScopedRepository[CaseRule]):
    model = CaseRule
    not_found_message = "No such case rule."

    async def ordered(self, session: AsyncSession, account_id: uuid.UUID) -> list[CaseRule]:
        rows = await session.scalars(self.select(account_id).order_by(CaseRule.position, CaseRule.created_at))
        return list(rows)

    async def next_position(self, session: AsyncSession, account_id: uuid.UUID) -> int:
        top = await session.scalar(select(func.max(CaseRule.position)).where(CaseRule.account_id == account_id))
        return (top or 0) + 10


class SettingsRepository(AccountScopedRepository[CaseSettings]):
    model = CaseSettings

    async def current(self, session: AsyncSession, account_id: uuid.UUID) -> CaseSettings | None:
        row: CaseSettings | None = await session.scalar(self.select(account_id))
        return row

    async def current_for_update(self, session: AsyncSession, account_id: uuid.UUID) -> CaseSettings | None:
        row: CaseSettings | None = await session.scalar(self.select(account_id).with_for_update())
        return row


class TimelineRepository(AccountScopedRepository[CaseEvent]):
    model = CaseEvent

    async def of_case(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        case_id: uuid.UUID,
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[CaseEvent]:
        stmt = self.select(account_id).where(CaseEvent.case_id == case_id)
        if after is not None:
            stmt = stmt.where(tuple_(CaseEvent.created_at, CaseEvent.id) > tuple_(*after))
        rows = await session.scalars(stmt.order_by(CaseEvent.created_at, CaseEvent.id).limit(limit))
        return list(rows)

    async def first(self, session: AsyncSession, account_id: uuid.UUID, case_id: uuid.UUID) -> CaseEvent | None:
        row: CaseEvent | None = await session.scalar(
            self.select(account_id)
            .where(CaseEvent.case_id == case_id, CaseEvent.kind == "status_changed")
            .order_by(CaseEvent.created_at, CaseEvent.id)
            .limit(1)
        )
        return row


cases = CaseRepository()
rules_repo = RuleRepository()
settings_repo = SettingsRepository()
timeline = TimelineRepository()


# ---------------------------------------------------------------- list: filters and keyset pages per sort


@dataclass(frozen=True)
class CaseFilters:
    type: str | None = None
    subtype: str | None = None
    statuses: tuple[str, ...] = ()
    store_id: uuid.UUID | None = None
    vendor_code: str | None = None
    invoice_number: str | None = None
    po_number: str | None = None
    asin: str | None = None
    payment_number: str | None = None
    currency: str | None = None
    assignee: str | None = None
    tag: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    deadline_before: date | None = None
    deadline_after: date | None = None
    opened_after: date | None = None
    opened_before: date | None = None
    deadline_missed: bool | None = None
    needs_review: bool | None = None


SORTS = ("created_at", "priority", "dispute_deadline", "amount")


def filtered(account_id: uuid.UUID, f: CaseFilters) -> Select[Any]:
    stmt = cases.select_matching(
        account_id,
        type=f.type,
        subtype=f.subtype,
        store_id=f.store_id,
        vendor_code=f.vendor_code,
        invoice_number=f.invoice_number,
        po_number=f.po_number,
        asin=f.asin,
        payment_number=f.payment_number,
        currency=f.currency,
        assignee=f.assignee,
        deadline_missed=f.deadline_missed,
    )
    if f.statuses:
        stmt = stmt.where(RefundCase.status.in_(f.statuses))
    if f.tag is not None:
        stmt = stmt.where(RefundCase.tags.contains([f.tag]))
    if f.min_amount is not None:
        stmt = stmt.where(RefundCase.amount >= f.min_amount)
    if f.max_amount is not None:
        stmt = stmt.where(RefundCase.amount <= f.max_amount)
    if f.deadline_before is not None:
        stmt = stmt.where(RefundCase.dispute_deadline < f.deadline_before)
    if f.deadline_after is not None:
        stmt = stmt.where(RefundCase.dispute_deadline >= f.deadline_after)
    if f.opened_after is not None:
        stmt = stmt.where(RefundCase.opened_on >= f.opened_after)
    if f.opened_before is not None:
        stmt = stmt.where(RefundCase.opened_on < f.opened_before)
    if f.needs_review is not None:
        stmt = stmt.where((RefundCase.status == CaseStatus.needs_review) == f.needs_review)
    return stmt


def _encode(sort: str, value: Any, row_id: uuid.UUID) -> str:
    raw = orjson.dumps({"s": sort, "v": None if value is None else str(value), "i": str(row_id)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(sort: str, cursor: str) -> tuple[Any, uuid.UUID]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] != sort:
            raise ValueError("cursor of another sort")
        raw = data["v"]
        row_id = uuid.UUID(data["i"])
        value: Any
        if raw is None:
            if sort != "dispute_deadline":
                raise ValueError("null key")
            value = None
        elif sort == "created_at":
            value = datetime.fromisoformat(raw)
            if value.tzinfo is None:
                raise ValueError("naive")
        elif sort == "dispute_deadline":
            value = date.fromisoformat(raw)
        else:
            value = Decimal(raw)
            if not value.is_finite():
                raise ValueError("not finite")
        return value, row_id
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError, ArithmeticError) as exc:
        raise invalid_field(
            ["query", "cursor"], "not a cursor this API issued for this sort", "cursor_invalid"
        ) from exc


@dataclass(frozen=True)
class CasePage:
    rows: list[RefundCase]
    next_cursor: str | None
    has_more: bool


async def page(session: AsyncSession, stmt: Select[Any], *, sort: str, limit: int, cursor: str | None) -> CasePage:
    """A keyset page in the sort's order: created_at, priority and amount newest/highest first; deadline soonest
    first with cases without a deadline last. The key is always (sort value, id), so pages never skip or repeat."""
    id_ = RefundCase.id
    if sort == "dispute_deadline":
        col: Any = RefundCase.dispute_deadline
        if cursor:
            value, last = _decode(sort, cursor)
            if value is None:
                stmt = stmt.where(col.is_(None), id_ > last)
            else:
                stmt = stmt.where(or_(col > value, and_(col == value, id_ > last), col.is_(None)))
        stmt = stmt.order_by(col.asc().nulls_last(), id_.asc())
    else:
        col = {"created_at": RefundCase.created_at, "priority": RefundCase.priority, "amount": RefundCase.amount}
        col = col[sort]
        if cursor:
            value, last = _decode(sort, cursor)
            stmt = stmt.where(tuple_(col, id_) < tuple_(literal(value, col.type), literal(last, id_.type)))
        stmt = stmt.order_by(col.desc(), id_.desc())
    rows = list((await session.scalars(stmt.limit(limit + 1))).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last_row = rows[-1]
        next_cursor = _encode(sort, getattr(last_row, sort), last_row.id)
    return CasePage(rows, next_cursor, has_more)


# ---------------------------------------------------------------- creation: one INSERT … SELECT for every new case

CREATED_EVENT = "refund_case.created"
NEEDS_REVIEW_EVENT = "refund_case.needs_review"


@dataclass(frozen=True)
class Created:
    created: int
    needs_review: int
    event_ids: list[uuid.UUID]


def _event_data(row: Any) -> Any:
    return func.jsonb_build_object(
        "id", row.c.id,
        "type", row.c.type,
        "subtype", row.c.subtype,
        "status", row.c.status,
        "amount", cast(row.c.amount, String),
        "currency", row.c.currency,
        "invoice_number", row.c.invoice_number,
        "po_number", row.c.po_number,
        "vendor_code", row.c.vendor_code,
        "store_id", row.c.store_id,
        "opened_on", row.c.opened_on,
        "dispute_deadline", row.c.dispute_deadline,
        "origin_entry_id", row.c.origin_entry_id,
    )  # fmt: skip


async def create_cases(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    import_id: uuid.UUID | None,
    rules: Sequence[CaseRule],
    review_threshold: Decimal,
    windows: dict[str, Window],
    now: datetime,
) -> Created:
    """Open a classified, scored case for every deduction entry without one, and record its events — one statement.

    ``ON CONFLICT (account_id, origin_entry_id) DO NOTHING`` makes a second run (or a racing one) add nothing.
    """
    e = LedgerEntry
    inv = aliased(Invoice)
    po = aliased(PurchaseOrder)
    st = aliased(Store)
    magnitude = func.abs(e.amount)
    cls = classify(rules, Source(e.entry_type, e.description, e.vendor_code, e.store_id, magnitude), review_threshold)
    po_number = func.coalesce(e.po_number, inv.po_number)
    base = (
        select(
            e.id.label("origin_entry_id"),
            e.entry_type.label("origin_entry_type"),
            cls.type_.label("type"),
            cls.subtype.label("subtype"),
            cls.assignee.label("assignee"),
            cls.tags.label("tags"),
            cls.rule_id.label("rule_id"),
            cls.needs_review.label("needs_review"),
            magnitude.label("amount"),
            e.currency,
            e.store_id,
            func.coalesce(e.vendor_code, inv.vendor_code).label("vendor_code"),
            e.invoice_number,
            po_number.label("po_number"),
            e.asin,
            e.payment_number,
            e.reference,
            e.occurred_on.label("opened_on"),
            func.coalesce(e.due_on, inv.due_on).label("invoice_due_on"),
            func.coalesce(st.timezone, "UTC").label("timezone"),
            inv.id.isnot(None).label("has_invoice"),
            po.id.isnot(None).label("has_po"),
        )
        .select_from(e)
        .outerjoin(inv, and_(inv.account_id == e.account_id, inv.invoice_number == e.invoice_number))
        .outerjoin(st, and_(st.account_id == e.account_id, st.id == e.store_id))
        .outerjoin(po, and_(po.account_id == e.account_id, po.purchase_order_number == po_number))
        .where(
            e.account_id == account_id,
            e.entry_type.in_([t.value for t in DEDUCTION_TYPES]),
            ~exists().where(RefundCase.account_id == e.account_id, RefundCase.origin_entry_id == e.id),
        )
    )
    if import_id is not None:
        base = base.where(e.source_import_id == import_id)
    # OFFSET 0 keeps PostgreSQL from inlining each layer into the next: the classified type feeds the deadline
    # and the scores, and inlined it would be re-evaluated in every branch that mentions it.
    b = base.offset(0).subquery("b")
    deadline = sql_deadline(b.c.type, b.c.opened_on, b.c.invoice_due_on, windows)
    d = select(b, deadline.label("dispute_deadline")).offset(0).subquery("d")
    status = case(
        (d.c.needs_review, literal(CaseStatus.needs_review.value, String)),
        else_=literal(CaseStatus.open.value, String),
    )
    scores = score_columns(
        type_=d.c.type,
        status=status,
        amount=d.c.amount,
        recovered=literal(Decimal(0)),
        written_off=literal(Decimal(0)),
        deadline=d.c.dispute_deadline,
        today=sql_local_today(now, d.c.timezone),
        has_invoice=d.c.has_invoice,
        has_po=d.c.has_po,
    )
    columns = [
        "account_id", "id", "origin_entry_id", "origin_entry_type", "type", "subtype", "status", "amount",
        "currency", "store_id", "vendor_code", "invoice_number", "po_number", "asin", "payment_number", "reference",
        "opened_on", "invoice_due_on", "timezone", "dispute_deadline", "likelihood", "expected_recovery", "priority",
        "assignee", "tags", "rule_id",
    ]  # fmt: skip
    rows = select(
        literal(account_id).label("account_id"),
        func.gen_random_uuid(),
        d.c.origin_entry_id,
        d.c.origin_entry_type,
        d.c.type,
        d.c.subtype,
        status,
        d.c.amount,
        d.c.currency,
        d.c.store_id,
        d.c.vendor_code,
        d.c.invoice_number,
        d.c.po_number,
        d.c.asin,
        d.c.payment_number,
        d.c.reference,
        d.c.opened_on,
        d.c.invoice_due_on,
        d.c.timezone,
        d.c.dispute_deadline,
        scores.likelihood,
        scores.expected_recovery,
        scores.priority,
        d.c.assignee,
        d.c.tags,
        d.c.rule_id,
    )
    ins = (
        pg_insert(RefundCase)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=[RefundCase.account_id, RefundCase.origin_entry_id])
        .returning(*(getattr(RefundCase, c) for c in columns))
        .cte("ins")
    )
    created = select(ins.c.account_id, func.gen_random_uuid(), literal(CREATED_EVENT), _event_data(ins)).select_from(
        ins
    )
    review = (
        select(ins.c.account_id, func.gen_random_uuid(), literal(NEEDS_REVIEW_EVENT), _event_data(ins))
        .select_from(ins)
        .where(ins.c.status == CaseStatus.needs_review.value)
    )
    events = (
        pg_insert(Event)
        .from_select(["account_id", "id", "type", "data"], created.union_all(review))
        .returning(Event.id, Event.type)
        .cte("ev")
    )
    counts = select(
        func.count().filter(events.c.type == CREATED_EVENT),
        func.count().filter(events.c.type == NEEDS_REVIEW_EVENT),
        func.coalesce(func.array_agg(events.c.id), literal([], ARRAY(PG_UUID(as_uuid=True)))),
    ).select_from(events)
    # The anti-join must not be a nested loop over refund_cases: that table grows while this very statement
    # inserts into it, and an empty table's statistics make the planner pick exactly that (quadratic). A hash
    # anti-join reads the existing cases once, before the first insert. JIT only adds compile time here.
    await session.execute(text("SET LOCAL enable_nestloop = off"))
    await session.execute(text("SET LOCAL jit = off"))
    row = (await session.execute(counts)).one()
    await session.execute(text("SET LOCAL enable_nestloop = on"))
    await session.execute(text("SET LOCAL jit = on"))
    return Created(created=int(row[0]), needs_review=int(row[1]), event_ids=list(row[2]))


# ---------------------------------------------------------------- linking: reversals and later payments

_REVERSAL_CASE = " ".join(f"WHEN '{rev.value}' THEN '{orig.value}'" for rev, orig in REVERSAL_OF.items())
_SUFFIX = "'(SCR|SC|PCR|PC)$'"

LINK_SQL = f"""
WITH cand_rev AS (
    SELECT r.id AS entry_id, c.id AS case_id, c.opened_on, c.amount - c.recovered_amount AS open_amount
    FROM ledger_entries r
    JOIN refund_cases c
      ON c.account_id = r.account_id
     AND c.origin_entry_type = CASE r.entry_type {_REVERSAL_CASE} END
     AND regexp_replace(c.invoice_number, {_SUFFIX}, '') = regexp_replace(r.invoice_number, {_SUFFIX}, '')
    WHERE r.account_id = :account_id AND r.entry_type = ANY(:reversal_types)
      AND (CAST(:import_id AS uuid) IS NULL OR r.source_import_id = :import_id)
    UNION ALL
    SELECT r.id, c.id, c.opened_on, c.amount - c.recovered_amount
    FROM ledger_entries r
    JOIN refund_cases c
      ON c.account_id = r.account_id
     AND c.origin_entry_type = CASE r.entry_type {_REVERSAL_CASE} END
     AND c.reference = r.reference
    WHERE r.account_id = :account_id AND r.entry_type = ANY(:reversal_types)
      AND (CAST(:import_id AS uuid) IS NULL OR r.source_import_id = :import_id)
),
rev AS (
    SELECT DISTINCT ON (entry_id) entry_id, case_id, 'reversal' AS role
    FROM cand_rev
    WHERE NOT EXISTS (
        SELECT 1 FROM refund_case_entries l WHERE l.account_id = :account_id AND l.ledger_entry_id = cand_rev.entry_id
    )
    ORDER BY entry_id, (open_amount > 0) DESC, opened_on, case_id
),
pay AS (
    SELECT DISTINCT ON (p.id) p.id AS entry_id, c.id AS case_id, 'payment' AS role
    FROM ledger_entries p
    JOIN refund_cases c
      ON c.account_id = p.account_id
     AND c.origin_entry_type IN ('shortage_claim', 'price_claim')
     AND regexp_replace(c.invoice_number, {_SUFFIX}, '') = p.invoice_number
    WHERE p.account_id = :account_id AND p.entry_type = 'payment'
      AND (CAST(:import_id AS uuid) IS NULL OR p.source_import_id = :import_id)
      AND p.payment_number IS DISTINCT FROM c.payment_number
      AND p.occurred_on >= c.opened_on
      AND NOT EXISTS (
        SELECT 1 FROM refund_case_entries l WHERE l.account_id = :account_id AND l.ledger_entry_id = p.id
      )
    ORDER BY p.id, c.opened_on, c.id
),
ins AS (
    INSERT INTO refund_case_entries (account_id, id, case_id, ledger_entry_id, role)
    SELECT :account_id, gen_random_uuid(), case_id, entry_id, role
    FROM (SELECT * FROM rev UNION ALL SELECT * FROM pay) x
    ON CONFLICT DO NOTHING
    RETURNING case_id, ledger_entry_id, role
),
tl AS (
    INSERT INTO refund_case_events (account_id, id, case_id, kind, ledger_entry_id, amount, data)
    SELECT :account_id, gen_random_uuid(), ins.case_id, 'entry_linked', ins.ledger_entry_id, e.amount,
           jsonb_build_object('role', ins.role, 'entry_type', e.entry_type, 'payment_number', e.payment_number)
    FROM ins JOIN ledger_entries e ON e.account_id = :account_id AND e.id = ins.ledger_entry_id
    RETURNING case_id
)
SELECT DISTINCT case_id FROM tl
"""  # noqa: S608 - only code constants are formatted in


async def link_entries(session: AsyncSession, account_id: uuid.UUID, *, import_id: uuid.UUID | None) -> list[uuid.UUID]:
    """Link reversals and later payments to their cases (each entry at most once); the cases touched."""
    result = await session.execute(
        text(LINK_SQL).bindparams(
            bindparam("account_id", account_id),
            bindparam("import_id", import_id),
            bindparam("reversal_types", [t.value for t in REVERSAL_OF]),
        )
    )
    return [r[0] for r in result]


@dataclass(frozen=True)
class Recovered:
    case_id: uuid.UUID
    old_status: str
    new_status: str
    recovered_amount: Decimal


async def apply_recoveries(
    session: AsyncSession, account_id: uuid.UUID, case_ids: Sequence[uuid.UUID]
) -> list[Recovered]:
    """Recompute the recovered amount of ``case_ids`` from their linked entries and move their status with it.

    A provision's reversal closes it; a fully recovered case becomes ``recovered``; a partly recovered one
    ``partially_recovered``. The amount never goes down (a recovery recorded by hand stays).
    """
    if not case_ids:
        return []
    sql = text(
        """
        WITH sums AS (
            SELECT l.case_id, sum(abs(e.amount)) AS total
            FROM refund_case_entries l
            JOIN ledger_entries e ON e.account_id = l.account_id AND e.id = l.ledger_entry_id
            WHERE l.account_id = :account_id AND l.case_id = ANY(:ids) AND l.role IN ('reversal', 'payment')
            GROUP BY l.case_id
        ),
        old AS (
            SELECT c.id, c.status, c.origin_entry_type,
                   greatest(c.recovered_amount, least(c.amount, s.total)) AS recovered, c.amount
            FROM refund_cases c JOIN sums s ON s.case_id = c.id
            WHERE c.account_id = :account_id
            FOR UPDATE OF c
        ),
        new AS (
            SELECT id, status AS old_status, recovered,
                   CASE
                     WHEN status IN ('closed', 'written_off') THEN status
                     WHEN origin_entry_type = 'provision' THEN 'closed'
                     WHEN recovered >= amount THEN 'recovered'
                     WHEN recovered > 0 AND status <> 'recovered' THEN 'partially_recovered'
                     ELSE status
                   END AS new_status
            FROM old
        )
        UPDATE refund_cases c
           SET recovered_amount = new.recovered, status = new.new_status,
               version = c.version + 1, updated_at = clock_timestamp()
          FROM new
         WHERE c.account_id = :account_id AND c.id = new.id
           AND (c.recovered_amount <> new.recovered OR c.status <> new.new_status)
        RETURNING c.id, new.old_status, new.new_status, c.recovered_amount
        """
    ).bindparams(bindparam("account_id", account_id), bindparam("ids", list(case_ids)))
    result = await session.execute(sql)
    return [Recovered(r[0], r[1], r[2], r[3]) for r in result]


# ---------------------------------------------------------------- scoring, deadlines, re-classification


async def rescore(
    session: AsyncSession,
    *,
    now: datetime,
    account_id: uuid.UUID | None = None,
    case_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Recompute likelihood, expected recovery, priority and the missed-deadline flag (time moves on)."""
    c = RefundCase
    has_invoice = exists().where(Invoice.account_id == c.account_id, Invoice.invoice_number == c.invoice_number)
    has_po = exists().where(
        PurchaseOrder.account_id == c.account_id, PurchaseOrder.purchase_order_number == c.po_number
    )
    today = sql_local_today(now, c.timezone)
    s = score_columns(
        type_=c.type,
        status=c.status,
        amount=c.amount,
        recovered=c.recovered_amount,
        written_off=c.written_off_amount,
        deadline=c.dispute_deadline,
        today=today,
        has_invoice=has_invoice,
        has_po=has_po,
    )
    missed = and_(
        c.dispute_deadline.isnot(None),
        c.dispute_deadline < today,
        c.status.in_([st.value for st in UNDISPUTED_STATUSES]),
    )
    stmt = update(c).values(likelihood=s.likelihood, expected_recovery=s.expected_recovery, priority=s.priority)
    stmt = stmt.values(
        deadline_missed=or_(and_(c.deadline_missed, c.status.in_([st.value for st in UNDISPUTED_STATUSES])), missed)
    )
    if account_id is not None:
        stmt = stmt.where(c.account_id == account_id)
    if case_ids is not None:
        stmt = stmt.where(c.id.in_(list(case_ids)))
    else:
        stmt = stmt.where(c.status.notin_([st.value for st in DONE_STATUSES]))
    stmt = stmt.where(
        or_(
            c.likelihood.is_distinct_from(s.likelihood),
            c.expected_recovery.is_distinct_from(s.expected_recovery),
            c.priority.is_distinct_from(s.priority),
            c.deadline_missed.is_distinct_from(missed),
        )
    ).execution_options(synchronize_session=False)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Alert:
    account_id: uuid.UUID
    case_id: uuid.UUID
    days_left: int
    missed: bool


async def deadline_alerts(session: AsyncSession, *, now: datetime, thresholds: Sequence[int]) -> list[Alert]:
    """Cases crossing an alert threshold (7, 2 days) or their deadline since the last run, each once."""
    levels = sorted(thresholds, reverse=True)
    level_case = " ".join(f"WHEN days_left <= {int(t)} THEN {int(t)}" for t in sorted(levels))
    sql = text(
        f"""
        WITH due AS (
            SELECT account_id, id,
                   dispute_deadline - (CAST(:now AS timestamptz) AT TIME ZONE timezone)::date AS days_left,
                   deadline_alert_days
            FROM refund_cases
            WHERE status IN ('open', 'needs_review', 'ready_to_dispute') AND dispute_deadline IS NOT NULL
              AND dispute_deadline - (CAST(:now AS timestamptz) AT TIME ZONE timezone)::date <= :widest
        ),
        leveled AS (
            SELECT account_id, id, days_left, deadline_alert_days,
                   CASE WHEN days_left < 0 THEN -1 {level_case} END AS level
            FROM due
        )
        UPDATE refund_cases c SET deadline_alert_days = leveled.level,
               deadline_missed = c.deadline_missed OR leveled.level = -1
          FROM leveled
         WHERE c.account_id = leveled.account_id AND c.id = leveled.id
           AND leveled.level < coalesce(leveled.deadline_alert_days, 2147483647)
        RETURNING c.account_id, c.id, leveled.days_left, leveled.level = -1
        """  # noqa: S608 - only integers are formatted in
    ).bindparams(bindparam("now", now), bindparam("widest", max(levels)))
    result = await session.execute(sql)
    return [Alert(r[0], r[1], int(r[2]), bool(r[3])) for r in result]


async def reclassify(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    rules: Sequence[CaseRule],
    review_threshold: Decimal,
    windows: dict[str, Window],
) -> list[tuple[uuid.UUID, str, str]]:
    """Re-run the rules over the cases not yet disputed; the (id, old status, new status) of each case that changed.

    Type, subtype, rule and deadline follow the rules; assignee and tags change only where a rule sets them;
    ``open`` and ``needs_review`` follow the review decision, later statuses stay.
    """
    c = RefundCase
    e = LedgerEntry
    cls = classify(
        rules, Source(c.origin_entry_type, e.description, c.vendor_code, c.store_id, c.amount), review_threshold
    )
    n = (
        select(
            c.id.label("id"),
            c.status.label("old_status"),
            cls.type_.label("type"),
            cls.subtype.label("subtype"),
            func.coalesce(cls.assignee, c.assignee).label("assignee"),
            func.coalesce(func.nullif(cls.tags, cast(literal([]), c.tags.type)), c.tags).label("tags"),
            cls.rule_id.label("rule_id"),
            cls.needs_review.label("needs_review"),
            c.opened_on,
            c.invoice_due_on,
        )
        .join(e, and_(e.account_id == c.account_id, e.id == c.origin_entry_id))
        .where(c.account_id == account_id, c.status.in_([s.value for s in RECLASSIFIABLE_STATUSES]))
        .subquery("n")
    )
    new_status = case(
        (
            n.c.old_status.in_([CaseStatus.open.value, CaseStatus.needs_review.value]),
            case(
                (n.c.needs_review, literal(CaseStatus.needs_review.value, String)),
                else_=literal(CaseStatus.open.value, String),
            ),
        ),
        else_=n.c.old_status,
    )
    deadline = sql_deadline(n.c.type, n.c.opened_on, n.c.invoice_due_on, windows)
    stmt = (
        update(c)
        .values(
            type=n.c.type,
            subtype=n.c.subtype,
            assignee=n.c.assignee,
            tags=n.c.tags,
            rule_id=n.c.rule_id,
            status=new_status,
            dispute_deadline=deadline,
            deadline_alert_days=case(
                (c.dispute_deadline.is_distinct_from(deadline), null()), else_=c.deadline_alert_days
            ),
            version=c.version + 1,
            updated_at=func.clock_timestamp(),
        )
        .where(c.account_id == account_id, c.id == n.c.id)
        .where(
            or_(
                c.type.is_distinct_from(n.c.type),
                c.subtype.is_distinct_from(n.c.subtype),
                c.assignee.is_distinct_from(n.c.assignee),
                c.tags.is_distinct_from(n.c.tags),
                c.rule_id.is_distinct_from(n.c.rule_id),
                c.status.is_distinct_from(new_status),
                c.dispute_deadline.is_distinct_from(deadline),
            )
        )
        .returning(c.id, n.c.old_status, c.status)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return [(r[0], r[1], r[2]) for r in result]


async def recompute_deadlines(session: AsyncSession, account_id: uuid.UUID, windows: dict[str, Window]) -> int:
    """New windows apply to every case not yet disputed."""
    c = RefundCase
    deadline = sql_deadline(c.type, c.opened_on, c.invoice_due_on, windows)
    stmt = (
        update(c)
        .values(dispute_deadline=deadline, deadline_alert_days=None, version=c.version + 1)
        .where(
            c.account_id == account_id,
            c.status.in_([s.value for s in UNDISPUTED_STATUSES]),
            c.dispute_deadline.is_distinct_from(deadline),
        )
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def accounts_with_uncased_deductions(session: AsyncSession) -> list[uuid.UUID]:
    e = LedgerEntry
    rows = await session.scalars(
        select(e.account_id)
        .where(
            e.entry_type.in_([t.value for t in DEDUCTION_TYPES]),
            ~exists().where(RefundCase.account_id == e.account_id, RefundCase.origin_entry_id == e.id),
        )
        .distinct()
    )
    return list(rows)


async def account_lock(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Serialise case creation per account for the transaction (two racing jobs take turns)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('open_refund_cases:' || CAST(:a AS text), 0))").bindparams(
            bindparam("a", str(account_id))
        )
    )


# ---------------------------------------------------------------- evidence


@dataclass
class EvidenceRows:
    origin: LedgerEntry | None
    invoice: Invoice | None
    purchase_order: Any | None
    po_items: list[Any]
    shipments: list[Any]
    submissions: list[Any]
    payment_lines: list[Any]
    import_document_id: uuid.UUID | None
    invoice_line_entries: list[LedgerEntry]


def invoice_numbers_of(case: RefundCase) -> list[str]:
    """The case's invoice number and the original invoice it was taken from (``123SC`` → ``123``)."""
    if not case.invoice_number:
        return []
    numbers = [case.invoice_number]
    for suffix in ("SCR", "SC", "PCR", "PC"):
        if case.invoice_number.endswith(suffix) and len(case.invoice_number) > len(suffix):
            numbers.append(case.invoice_number[: -len(suffix)])
            break
    return numbers


async def evidence_rows(session: AsyncSession, account_id: uuid.UUID, case: RefundCase) -> EvidenceRows:
    from acorn_api.amazon.models import InvoiceSubmission, PurchaseOrderItem, Shipment
    from acorn_api.ledger.models import Import, PaymentLine

    origin = await session.scalar(
        select(LedgerEntry).where(LedgerEntry.account_id == account_id, LedgerEntry.id == case.origin_entry_id)
    )
    numbers = invoice_numbers_of(case)
    invoice = None
    if numbers:
        found = await session.scalars(
            select(Invoice).where(Invoice.account_id == account_id, Invoice.invoice_number.in_(numbers))
        )
        by_number = {i.invoice_number: i for i in found}
        invoice = next((by_number[n] for n in numbers if n in by_number), None)
    po_number = case.po_number or (invoice.po_number if invoice else None)
    po = None
    items: list[Any] = []
    shipments: list[Any] = []
    if po_number:
        po = await session.scalar(
            select(PurchaseOrder).where(
                PurchaseOrder.account_id == account_id, PurchaseOrder.purchase_order_number == po_number
            )
        )
        if po is not None:
            items = list(
                await session.scalars(
                    select(PurchaseOrderItem)
                    .where(PurchaseOrderItem.account_id == account_id, PurchaseOrderItem.purchase_order_id == po.id)
                    .order_by(PurchaseOrderItem.item_sequence_number)
                )
            )
        shipments = list(
            await session.scalars(
                select(Shipment)
                .where(Shipment.account_id == account_id, Shipment.purchase_order_numbers.contains([po_number]))
                .order_by(Shipment.created_at)
                .limit(20)
            )
        )
    submissions: list[Any] = []
    payment_lines: list[Any] = []
    invoice_lines: list[LedgerEntry] = []
    if numbers:
        submissions = list(
            await session.scalars(
                select(InvoiceSubmission).where(
                    InvoiceSubmission.account_id == account_id,
                    InvoiceSubmission.invoice_number.in_(numbers),
                    InvoiceSubmission.status != "failed",
                )
            )
        )
        payment_lines = list(
            await session.scalars(
                select(PaymentLine)
                .where(PaymentLine.account_id == account_id, PaymentLine.invoice_number.in_(numbers))
                .order_by(PaymentLine.created_at)
                .limit(50)
            )
        )
        invoice_lines = list(
            await session.scalars(
                select(LedgerEntry)
                .where(
                    LedgerEntry.account_id == account_id,
                    LedgerEntry.invoice_number.in_(numbers),
                    LedgerEntry.entry_type == "invoice",
                    LedgerEntry.quantity.isnot(None),
                )
                .limit(500)
            )
        )
    document_id = None
    if origin is not None and origin.source_import_id is not None:
        document_id = await session.scalar(
            select(Import.raw_document_id).where(Import.account_id == account_id, Import.id == origin.source_import_id)
        )
    return EvidenceRows(origin, invoice, po, items, shipments, submissions, payment_lines, document_id, invoice_lines)


async def raw_documents(session: AsyncSession, account_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Any]:
    from sqlalchemy.orm import undefer

    from acorn_api.ledger.archive import RawDocument

    if not ids:
        return []
    rows = await session.scalars(
        select(RawDocument)
        .where(RawDocument.account_id == account_id, RawDocument.id.in_(list(ids)))
        .options(undefer(RawDocument.content))
    )
    return list(rows)


PREDICTED_SQL = """
WITH invoiced AS (
    SELECT s.invoice_number, it->>'purchaseOrderNumber' AS po_number, it->>'amazonProductIdentifier' AS asin,
           it->>'itemSequenceNumber' AS seq, sum((it->'invoicedQuantity'->>'amount')::int) AS qty,
           max((it->'netCost'->>'amount')::numeric) AS unit_cost, max(s.currency) AS currency
    FROM invoice_submissions s CROSS JOIN LATERAL jsonb_array_elements(s.payload->'items') it
    WHERE s.account_id = :account_id AND s.status <> 'failed' AND s.invoice_type = 'Invoice'
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT e.invoice_number, e.po_number, e.asin, NULL, sum(e.quantity), NULL, max(e.currency)
    FROM ledger_entries e
    WHERE e.account_id = :account_id AND e.entry_type = 'invoice' AND e.quantity IS NOT NULL
      AND e.po_number IS NOT NULL AND e.invoice_number IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM invoice_submissions s
        WHERE s.account_id = :account_id AND s.invoice_number = e.invoice_number AND s.status <> 'failed'
      )
    GROUP BY 1, 2, 3
),
lines AS (
    SELECT v.invoice_number, v.po_number, coalesce(v.asin, i.asin) AS asin, i.item_sequence_number AS seq,
           v.qty AS invoiced, i.received_quantity AS received, coalesce(v.unit_cost, i.net_cost) AS unit_cost,
           coalesce(v.currency, i.currency) AS currency, i.receive_status, i.last_received_at
    FROM invoiced v
    JOIN purchase_orders p ON p.account_id = :account_id AND p.purchase_order_number = v.po_number
    JOIN purchase_order_items i ON i.account_id = :account_id AND i.purchase_order_id = p.id
     AND (i.item_sequence_number = v.seq OR (v.seq IS NULL AND i.asin = v.asin))
    WHERE i.received_quantity IS NOT NULL AND i.received_quantity < v.qty
)
SELECT l.*, inv.due_on,
       EXISTS (
         SELECT 1 FROM refund_cases c
         WHERE c.account_id = :account_id AND c.origin_entry_type = 'shortage_claim'
           AND regexp_replace(c.invoice_number, '(SCR|SC)$', '') = l.invoice_number
       ) AS has_case
FROM lines l
LEFT JOIN invoices inv ON inv.account_id = :account_id AND inv.invoice_number = l.invoice_number
WHERE (CAST(:after_invoice AS text) IS NULL
       OR (l.invoice_number, l.po_number, coalesce(l.seq, '')) > (:after_invoice, :after_po, :after_seq))
ORDER BY l.invoice_number, l.po_number, coalesce(l.seq, '')
LIMIT :limit
"""


async def predicted_shortages(
    session: AsyncSession, account_id: uuid.UUID, *, after: tuple[str, str, str] | None, limit: int
) -> list[Any]:
    params = {
        "account_id": account_id,
        "after_invoice": after[0] if after else None,
        "after_po": after[1] if after else None,
        "after_seq": after[2] if after else None,
        "limit": limit,
    }
    result = await session.execute(text(PREDICTED_SQL), params)
    return list(result.mappings())
