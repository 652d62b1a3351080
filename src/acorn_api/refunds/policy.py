"""What a case is worth and by when: built-in classification, dispute windows, likelihood, priority, workflow.

The numbers are ACORN's defaults (DESIGN.md §1); an account overrides the review threshold and the windows
(``refund_case_settings``) and the classification (``case_rules``). Scoring is SQL so that 200,000 cases are
scored in one statement; :func:`score_columns` is the one definition used by creation and every re-score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, Numeric, case, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

from acorn_api.ledger.models import EntryType
from acorn_api.refunds.models import CaseStatus, CaseType

Expr = Any  # a column, an attribute or an expression

DEFAULT_REVIEW_THRESHOLD = Decimal("500")

DEFAULT_TYPE: dict[str, CaseType] = {
    EntryType.shortage_claim: CaseType.shortage,
    EntryType.price_claim: CaseType.price_claim,
    EntryType.chargeback: CaseType.compliance_chargeback,
    EntryType.coop: CaseType.coop,
    EntryType.return_: CaseType.customer_return,
    EntryType.damage_allowance: CaseType.warehouse_damage,
    EntryType.provision: CaseType.provision,
    EntryType.price_protection: CaseType.price_protection,
}

# Built-in chargeback subtypes: (case-insensitive substring of the description, subtype). First match wins.
CHARGEBACK_SUBTYPES: tuple[tuple[str, str], ...] = (
    ("on-time", "po_on_time_accuracy"),
    ("on time", "po_on_time_accuracy"),
    ("asn", "asn_accuracy"),
    ("label", "carton_labels"),
    ("prep", "prep"),
    ("packag", "packaging"),
    ("transport", "transportation"),
    ("carrier", "transportation"),
    ("routing", "transportation"),
)


class Basis:
    due_on = "due_on"  # the invoice's due date (falls back to the deduction's date when unknown)
    notice = "notice"  # the date of the deduction notice (the ledger entry's date)


@dataclass(frozen=True)
class Window:
    """A dispute window: ``basis`` + ``months`` + ``days``; ``None`` months and days = no deadline."""

    basis: str
    days: int | None
    months: int = 0
    max_disputes: int = 2

    @property
    def has_deadline(self) -> bool:
        return self.days is not None

    def deadline(self, notice_on: date, due_on: date | None) -> date | None:
        """The same arithmetic as the SQL: month steps clamp to the month's end, then days are added."""
        if self.days is None:
            return None
        start = (due_on or notice_on) if self.basis == Basis.due_on else notice_on
        year, month = divmod(start.month - 1 + self.months, 12)
        target_year, target_month = start.year + year, month + 1
        last = _month_length(target_year, target_month)
        stepped = date(target_year, target_month, min(start.day, last))
        return date.fromordinal(stepped.toordinal() + self.days)


def _month_length(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


DEFAULT_WINDOWS: dict[str, Window] = {
    CaseType.shortage: Window(Basis.due_on, days=30, max_disputes=2),
    CaseType.price_claim: Window(Basis.due_on, days=30, max_disputes=2),
    CaseType.compliance_chargeback: Window(Basis.notice, days=30, max_disputes=2),
    CaseType.coop: Window(Basis.notice, days=0, months=24, max_disputes=2),
    CaseType.customer_return: Window(Basis.notice, days=30, max_disputes=1),
    CaseType.warehouse_damage: Window(Basis.notice, days=30, max_disputes=1),
    CaseType.price_protection: Window(Basis.notice, days=30, max_disputes=1),
    CaseType.provision: Window(Basis.notice, days=None, max_disputes=0),  # released by its reversal
    CaseType.other: Window(Basis.notice, days=30, max_disputes=1),
}

# How often a dispute of each type succeeds, before evidence and time (a starting point, not a promise).
BASE_LIKELIHOOD: dict[str, Decimal] = {
    CaseType.shortage: Decimal("0.60"),
    CaseType.price_claim: Decimal("0.50"),
    CaseType.compliance_chargeback: Decimal("0.40"),
    CaseType.coop: Decimal("0.30"),
    CaseType.customer_return: Decimal("0.20"),
    CaseType.warehouse_damage: Decimal("0.30"),
    CaseType.provision: Decimal("0.90"),
    CaseType.price_protection: Decimal("0.30"),
    CaseType.other: Decimal("0.20"),
}

DONE_STATUSES = frozenset({CaseStatus.recovered, CaseStatus.written_off, CaseStatus.closed})
WAITING_STATUSES = frozenset({CaseStatus.disputed, CaseStatus.redisputed})
UNDISPUTED_STATUSES = frozenset({CaseStatus.open, CaseStatus.needs_review, CaseStatus.ready_to_dispute})
RECLASSIFIABLE_STATUSES = UNDISPUTED_STATUSES

# The workflow. ``redisputed`` is further bounded by the type's ``max_disputes``.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.open: frozenset(
        {CaseStatus.needs_review, CaseStatus.ready_to_dispute, CaseStatus.written_off, CaseStatus.closed}
    ),
    CaseStatus.needs_review: frozenset({CaseStatus.open, CaseStatus.ready_to_dispute, CaseStatus.written_off}),
    CaseStatus.ready_to_dispute: frozenset({CaseStatus.needs_review, CaseStatus.disputed, CaseStatus.written_off}),
    CaseStatus.disputed: frozenset({CaseStatus.recovered, CaseStatus.partially_recovered, CaseStatus.denied}),
    CaseStatus.redisputed: frozenset({CaseStatus.recovered, CaseStatus.partially_recovered, CaseStatus.denied}),
    CaseStatus.partially_recovered: frozenset({CaseStatus.redisputed, CaseStatus.written_off, CaseStatus.closed}),
    CaseStatus.denied: frozenset({CaseStatus.redisputed, CaseStatus.written_off, CaseStatus.closed}),
    CaseStatus.recovered: frozenset({CaseStatus.closed}),
    CaseStatus.written_off: frozenset({CaseStatus.closed}),
    CaseStatus.closed: frozenset(),
}


def local_today(now: datetime, timezone: str) -> date:
    """The date at ``now`` where the case's store is: a deadline is a day on the store's calendar."""
    return now.astimezone(ZoneInfo(timezone)).date()


def days_left(deadline: date | None, now: datetime, timezone: str) -> int | None:
    if deadline is None:
        return None
    return (deadline - local_today(now, timezone)).days


# ---------------------------------------------------------------- SQL


def num(value: Decimal | str | int) -> ColumnElement[Decimal]:
    return literal(Decimal(value), Numeric(20, 4))


def sql_deadline(
    type_: Expr,
    notice_on: Expr,
    due_on: Expr,
    windows: dict[str, Window],
) -> Expr:
    """The dispute deadline of each row from its (classified) type, in SQL."""
    whens = []
    for case_type, window in windows.items():
        if window.days is None:
            continue
        start = func.coalesce(due_on, notice_on) if window.basis == Basis.due_on else notice_on
        interval = func.make_interval(0, literal(window.months, Integer), 0, literal(window.days, Integer))
        whens.append((type_ == case_type, cast(start + interval, Date)))
    return case(*whens, else_=None) if whens else cast(literal(None), Date)


def sql_local_today(now: datetime, timezone: Expr) -> Expr:
    return cast(func.timezone(timezone, literal(now)), Date)


@dataclass(frozen=True)
class Scores:
    likelihood: Expr
    expected_recovery: Expr
    priority: Expr


def score_columns(
    *,
    type_: Expr,
    status: Expr,
    amount: Expr,
    recovered: Expr,
    written_off: Expr,
    deadline: Expr,
    today: Expr,
    has_invoice: Expr,
    has_po: Expr,
) -> Scores:
    """likelihood = type base × evidence × time left; expected = remaining × likelihood; priority = expected × urgency.

    evidence: 0.8, +0.1 with the invoice on file, +0.1 with the purchase order on file.
    time left: 1 at 14+ days, falling linearly to 0.5 at the deadline, 0.05 once it has passed.
    urgency: ×3 within 7 days, ×2 within 14, ×0.25 once missed; ×0.1 while Amazon has the dispute; 0 when done.
    """
    base = case(*((type_ == t, num(v)) for t, v in BASE_LIKELIHOOD.items()), else_=num("0.2"))
    evidence = num("0.8") + case((has_invoice, num("0.1")), else_=num(0)) + case((has_po, num("0.1")), else_=num(0))
    left = deadline - today
    time_factor = case(
        (deadline.is_(None), num(1)),
        (left < 0, num("0.05")),
        (left >= 14, num(1)),
        else_=num("0.5") + cast(left, Numeric(20, 4)) / num(28),
    )
    likelihood = func.round(base * evidence * time_factor, 4)
    remaining = func.greatest(amount - recovered - written_off, num(0))
    expected = func.round(remaining * likelihood, 2)
    urgency = case(
        (status.in_([s.value for s in DONE_STATUSES]), num(0)),
        (status.in_([s.value for s in WAITING_STATUSES]), num("0.1")),
        (deadline.is_(None), num(1)),
        (left < 0, num("0.25")),
        (left <= 7, num(3)),
        (left <= 14, num(2)),
        else_=num(1),
    )
    priority = func.round(expected * urgency, 4)
    return Scores(likelihood=likelihood, expected_recovery=expected, priority=priority)
