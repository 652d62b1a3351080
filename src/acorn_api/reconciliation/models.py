"""Reconciliation tables: matching runs, per-invoice balances and the aggregates the endpoints read.

Everything here is derived from the ledger (and refund cases) by the matching job, set-based in SQL
(``repository.py``); nothing here is edited by hand. The aggregates (``balance_rollups``,
``deduction_facts``, ``purchase_order_facts``) exist so that summary, aging and trend endpoints read a
few thousand pre-grouped rows instead of scanning a million invoices per request.

Key choices: ``invoice_balances`` keys on ``(account_id, invoice_number)`` (the natural key the ledger
matches on, so an upsert needs no lookup); ``journal_entries`` keys on ``(account_id, seq)`` because the
sequence *is* its identity: an ERP resumes from the last line ``seq`` it posted. Aggregate rows key on their
grouping columns; "none" is stored as the nil UUID / empty string so the keys can be primary keys.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.accounts import models as _accounts_models  # noqa: F401 - foreign key target
from acorn_api.core.models import AccountKeyedMixin, Base, check_in, tenant_fk
from acorn_api.ledger import models as _ledger_models  # noqa: F401 - imports, a foreign key target

MONEY = Numeric(20, 4)
NO_STORE = uuid.UUID(int=0)
"""Stands for "no store" in aggregate keys (a primary key column cannot be NULL)."""


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class RunKind(StrEnum):
    full = "full"
    incremental = "incremental"


class BalanceStatus(StrEnum):
    unpaid = "unpaid"
    paid = "paid"
    short_paid = "short_paid"
    unexplained_short = "unexplained_short"
    overpaid = "overpaid"
    disputed = "disputed"
    recovered = "recovered"


class JournalCategory(StrEnum):
    receivable = "receivable"
    cash = "cash"
    deduction_expense = "deduction_expense"
    recovery_income = "recovery_income"


def _account_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))


class ReconciliationRun(AccountKeyedMixin, Base):
    """One execution of the matching job: full (on request) or incremental (after an import)."""

    __tablename__ = "reconciliation_runs"

    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.queued, server_default="queued")
    import_id: Mapped[uuid.UUID | None]
    requested_by: Mapped[uuid.UUID | None]
    invoices_matched: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    newly_unexplained: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unmatched_payments: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    journal_lines: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    facts_applied: Mapped[bool] = mapped_column(default=False, server_default="false")
    timings_ms: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __extra_table_args__ = (
        tenant_fk(["import_id"], "imports", ondelete="SET NULL"),
        CheckConstraint(check_in("kind", list(RunKind)), name="kind"),
        CheckConstraint(check_in("status", list(RunStatus)), name="status"),
        CheckConstraint("kind = 'full' OR import_id IS NOT NULL OR status = 'failed'", name="incremental_import"),
        Index("ix_reconciliation_runs_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_reconciliation_runs_account_id_import_id", "account_id", "import_id"),
    )


class InvoiceBalance(Base):
    """Where one invoice's money is: invoiced = paid + deducted − reversed + written off + open balance."""

    __tablename__ = "invoice_balances"

    account_id: Mapped[uuid.UUID] = _account_fk()
    invoice_number: Mapped[str] = mapped_column(String(64))
    invoice_id: Mapped[uuid.UUID | None]
    currency: Mapped[str] = mapped_column(String(3))
    invoice_date: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    po_number: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[uuid.UUID | None]
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    invoiced: Mapped[Decimal] = mapped_column(MONEY)
    paid: Mapped[Decimal] = mapped_column(MONEY)
    deducted: Mapped[Decimal] = mapped_column(MONEY)
    deductions: Mapped[dict[str, str]] = mapped_column(JSON)
    reversed: Mapped[Decimal] = mapped_column(MONEY)
    written_off: Mapped[Decimal] = mapped_column(MONEY)
    disputed: Mapped[Decimal] = mapped_column(MONEY)
    open_balance: Mapped[Decimal] = mapped_column(MONEY)
    open_deductions: Mapped[Decimal] = mapped_column(MONEY)
    status: Mapped[str] = mapped_column(String(20))
    unconverted_entries: Mapped[int] = mapped_column(Integer)
    entry_count: Mapped[int] = mapped_column(Integer)
    last_activity_on: Mapped[date | None] = mapped_column(Date)
    matched_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "invoice_number"),
        CheckConstraint(check_in("status", list(BalanceStatus)), name="status"),
        Index("ix_invoice_balances_account_id_invoice_date", "account_id", "invoice_date", "invoice_number"),
        Index("ix_invoice_balances_account_id_status_invoice_date", "account_id", "status", "invoice_date"),
        Index("ix_invoice_balances_account_id_currency_open_balance", "account_id", "currency", "open_balance"),
        Index("ix_invoice_balances_account_id_po_number", "account_id", "po_number"),
    )


class RollupGrain(StrEnum):
    day = "day"
    month = "month"
    due_day = "due_day"
    due_month = "due_month"


class BalanceRollup(Base):
    """Invoice balances summed per grain and period, store, vendor code and currency.

    Grains: ``day`` and ``month`` of the invoice date (for the summary: whole months of a range read month
    rows, its ragged edges day rows), ``due_day`` and ``due_month`` of the due date (for aging: months
    that fall in one age bucket read month rows). ``deduction_type = ''`` rows hold the invoice totals;
    invoice-date grains add a row per deduction type with that type's deducted amount. Maintained by
    delta (new minus old balances) on incremental runs, rebuilt on full runs.
    """

    __tablename__ = "balance_rollups"

    account_id: Mapped[uuid.UUID] = _account_fk()
    grain: Mapped[str] = mapped_column(String(10))
    period: Mapped[date] = mapped_column(Date)
    store_id: Mapped[uuid.UUID]
    vendor_code: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    deduction_type: Mapped[str] = mapped_column(String(30))
    invoice_count: Mapped[int] = mapped_column(Integer)
    invoiced: Mapped[Decimal] = mapped_column(MONEY)
    paid: Mapped[Decimal] = mapped_column(MONEY)
    deducted: Mapped[Decimal] = mapped_column(MONEY)
    reversed: Mapped[Decimal] = mapped_column(MONEY)
    written_off: Mapped[Decimal] = mapped_column(MONEY)
    disputed: Mapped[Decimal] = mapped_column(MONEY)
    open_balance: Mapped[Decimal] = mapped_column(MONEY)
    open_deductions: Mapped[Decimal] = mapped_column(MONEY)
    unexplained_short: Mapped[Decimal] = mapped_column(MONEY)

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "grain", "deduction_type", "period", "store_id", "vendor_code", "currency"),
        CheckConstraint(check_in("grain", list(RollupGrain)), name="grain"),
    )


class DeductionFact(Base):
    """Ledger money per month, entry type, store, ASIN and issue type: what the trend endpoints read.

    Built from ledger entries (append-only), so an import's entries are added once per import
    (``reconciliation_runs.facts_applied`` guards the re-delivery of a job).
    """

    __tablename__ = "deduction_facts"

    account_id: Mapped[uuid.UUID] = _account_fk()
    month: Mapped[date] = mapped_column(Date)
    entry_type: Mapped[str] = mapped_column(String(30))
    store_id: Mapped[uuid.UUID]
    asin: Mapped[str] = mapped_column(String(20))
    issue_type: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    entry_count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "month", "entry_type", "store_id", "asin", "issue_type", "currency"),
    )


class PurchaseOrderFact(Base):
    """Purchase order items per month of the order and ASIN: ordered, acknowledged, received, cost."""

    __tablename__ = "purchase_order_facts"

    account_id: Mapped[uuid.UUID] = _account_fk()
    month: Mapped[date] = mapped_column(Date)
    asin: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    item_count: Mapped[int] = mapped_column(Integer)
    ordered_units: Mapped[int] = mapped_column(BigInteger)
    acknowledged_units: Mapped[int] = mapped_column(BigInteger)
    received_units: Mapped[int] = mapped_column(BigInteger)
    ordered_cost: Mapped[Decimal] = mapped_column(MONEY)
    costed_units: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (PrimaryKeyConstraint("account_id", "month", "asin", "currency"),)


class UnmatchedPayment(Base):
    """A remittance line paying an invoice number no invoice carries, with likely invoices."""

    __tablename__ = "unmatched_payments"

    account_id: Mapped[uuid.UUID] = _account_fk()
    payment_line_id: Mapped[uuid.UUID]
    payment_number: Mapped[str] = mapped_column(String(64))
    invoice_number: Mapped[str] = mapped_column(String(64))
    payment_date: Mapped[date | None] = mapped_column(Date)
    po_number: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "payment_line_id"),
        Index("ix_unmatched_payments_account_id_invoice_number", "account_id", "invoice_number"),
        Index("ix_unmatched_payments_account_id_created_at", "account_id", "created_at", "payment_line_id"),
    )


class JournalEntry(Base):
    """One journalised ledger entry: the two balanced lines of the ERP feed, ``seq`` and ``seq + 1``.

    The feed's lines are derived from the entry by a fixed rule (``service.journal_lines``): its debit line (cash,
    deduction expense or recovery income, ``-amount``) then its receivable line (``amount``). Storing the entry
    once instead of two line rows halves what matching writes per imported entry. ``seq`` only ever grows, so a
    poller's cursor (a line's ``seq``) never skips a line.
    """

    __tablename__ = "journal_entries"

    account_id: Mapped[uuid.UUID] = _account_fk()
    seq: Mapped[int] = mapped_column(BigInteger)  # the first line's position in the feed; the second's is seq + 1
    entry_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(MONEY)  # the ledger entry's amount (the receivable line's)
    currency: Mapped[str] = mapped_column(String(3))
    ledger_entry_id: Mapped[uuid.UUID]
    entry_type: Mapped[str] = mapped_column(String(30))
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    payment_number: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(128))
    store_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "seq"),
        # each ledger entry is journalised once: journalising twice adds nothing
        UniqueConstraint("account_id", "ledger_entry_id"),
    )


class AppliedImport(Base):
    """An import whose ledger entries are already counted in ``deduction_facts`` (so never twice)."""

    __tablename__ = "reconciliation_applied_imports"

    account_id: Mapped[uuid.UUID] = _account_fk()
    import_id: Mapped[uuid.UUID]
    applied_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "import_id"),
        tenant_fk(["import_id"], "imports", ondelete="CASCADE"),
    )
