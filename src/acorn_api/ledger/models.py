"""The ledger's tables: imports of Vendor Central reports, the append-only ledger, invoices and payments.

Every table here keys on ``(account_id, id)`` and every unique index and foreign key includes
``account_id`` (DESIGN.md §5), so the ledger can be distributed by account without a rewrite.
``ledger_entries`` is hash-partitioned by ``account_id`` into ``LEDGER_PARTITIONS`` partitions from its
first migration; the partitions are created by the migration, not by the model.

Sign convention: ``amount`` is positive when it is owed to the vendor (an invoice, a reversal of a
deduction) and negative when Amazon takes it (a payment received reduces the receivable, so it is
negative too; a deduction is negative). ``invoice + payments + deductions + reversals = open balance``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.accounts import models as _accounts_models  # noqa: F401 - foreign key targets must be mapped
from acorn_api.core.models import AccountKeyedMixin, Base, check_in, tenant_fk
from acorn_api.ledger import archive as _archive  # noqa: F401 - raw_documents, a foreign key target
from acorn_api.stores import models as _stores_models  # noqa: F401 - stores, a foreign key target

LEDGER_PARTITIONS = 16
MONEY = Numeric(20, 4)


class ReportType(StrEnum):
    remittance = "remittance"
    chargebacks = "chargebacks"
    payables = "payables"
    coop = "coop"
    returns = "returns"
    invoices = "invoices"
    invoice_lines = "invoice_lines"


class ImportStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class EntryType(StrEnum):
    invoice = "invoice"
    payment = "payment"
    shortage_claim = "shortage_claim"
    shortage_reversal = "shortage_reversal"
    price_claim = "price_claim"
    price_claim_reversal = "price_claim_reversal"
    chargeback = "chargeback"
    coop = "coop"
    return_ = "return"
    damage_allowance = "damage_allowance"
    provision = "provision"
    provision_reversal = "provision_reversal"
    price_protection = "price_protection"
    withholding = "withholding"
    terms_discount = "terms_discount"
    adjustment = "adjustment"


DEDUCTION_TYPES: frozenset[EntryType] = frozenset(
    {
        EntryType.shortage_claim,
        EntryType.price_claim,
        EntryType.chargeback,
        EntryType.coop,
        EntryType.return_,
        EntryType.damage_allowance,
        EntryType.provision,
        EntryType.price_protection,
    }
)
"""Entry types that open a refund case (issue: refund cases)."""

REVERSAL_OF: dict[EntryType, EntryType] = {
    EntryType.shortage_reversal: EntryType.shortage_claim,
    EntryType.price_claim_reversal: EntryType.price_claim,
    EntryType.provision_reversal: EntryType.provision,
}
"""A reversal entry recovers (or releases) the deduction of the type it maps to."""


class Import(AccountKeyedMixin, Base):
    """One uploaded Vendor Central (or ERP) file and what loading it did."""

    __tablename__ = "imports"

    report_type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default=ImportStatus.queued, server_default="queued")
    file_name: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    raw_document_id: Mapped[uuid.UUID | None]
    store_id: Mapped[uuid.UUID | None]
    mapping_id: Mapped[uuid.UUID | None]
    reject_file_on_errors: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    detected_format: Mapped[str | None] = mapped_column(String(10))
    encoding: Mapped[str | None] = mapped_column(String(20))
    date_format: Mapped[str | None] = mapped_column(String(20))
    rows_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    row_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __extra_table_args__ = (
        tenant_fk(["raw_document_id"], "raw_documents"),
        tenant_fk(["store_id"], "stores"),
        tenant_fk(["mapping_id"], "import_mappings", ondelete="SET NULL"),
        CheckConstraint(check_in("report_type", list(ReportType)), name="report_type"),
        CheckConstraint(check_in("status", list(ImportStatus)), name="status"),
        CheckConstraint("detected_format IN ('csv', 'xlsx')", name="detected_format"),
        CheckConstraint(
            "rows_total >= 0 AND rows_loaded >= 0 AND rows_duplicate >= 0 AND rows_rejected >= 0", name="counts"
        ),
        # the same bytes uploaded twice as the same report are one import
        UniqueConstraint("account_id", "report_type", "sha256"),
        Index("ix_imports_account_id_created_at", "account_id", "created_at", "id"),
    )


class ImportMapping(AccountKeyedMixin, Base):
    """A user's header renames for one report type: ``{"Amount Paid": "amount_paid", ...}``."""

    __tablename__ = "import_mappings"

    report_type: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    columns: Mapped[dict[str, Any]] = mapped_column(JSONB)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    __extra_table_args__ = (
        CheckConstraint(check_in("report_type", list(ReportType)), name="report_type"),
        UniqueConstraint("account_id", "report_type", "name"),
        Index("ix_import_mappings_account_id_created_at", "account_id", "created_at", "id"),
    )


class LedgerEntry(AccountKeyedMixin, Base):
    """One line of money: append-only; a correction is a new entry, never an update."""

    __tablename__ = "ledger_entries"

    entry_type: Mapped[str] = mapped_column(String(30))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    payment_number: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(64))
    asin: Mapped[str | None] = mapped_column(String(20))
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[uuid.UUID | None]
    reference: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int | None] = mapped_column(Integer)
    source_import_id: Mapped[uuid.UUID | None]
    source_row: Mapped[int | None] = mapped_column(Integer)
    source_submission_id: Mapped[uuid.UUID | None]
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    natural_key: Mapped[str] = mapped_column(String(300))

    __extra_table_args__ = (
        tenant_fk(["store_id"], "stores"),
        tenant_fk(["source_import_id"], "imports"),
        CheckConstraint(check_in("entry_type", list(EntryType)), name="entry_type"),
        CheckConstraint("source_row IS NULL OR source_row > 0", name="source_row"),
        UniqueConstraint("account_id", "natural_key"),
        Index("ix_ledger_entries_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_ledger_entries_account_id_invoice_number", "account_id", "invoice_number"),
        Index("ix_ledger_entries_account_id_payment_number", "account_id", "payment_number"),
        Index("ix_ledger_entries_account_id_entry_type_occurred_on", "account_id", "entry_type", "occurred_on"),
        Index("ix_ledger_entries_account_id_source_import_id", "account_id", "source_import_id"),
        {"postgresql_partition_by": "HASH (account_id)"},
    )


class Invoice(AccountKeyedMixin, Base):
    """A vendor invoice, from an ERP invoice file, a remittance line or an accepted invoice submission."""

    __tablename__ = "invoices"

    invoice_number: Mapped[str] = mapped_column(String(64))
    invoice_date: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    po_number: Mapped[str | None] = mapped_column(String(64))
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[uuid.UUID | None]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(20))
    source_import_id: Mapped[uuid.UUID | None]
    source_submission_id: Mapped[uuid.UUID | None]
    ledger_entry_id: Mapped[uuid.UUID | None]

    __extra_table_args__ = (
        tenant_fk(["store_id"], "stores"),
        tenant_fk(["source_import_id"], "imports"),
        CheckConstraint("source IN ('import', 'remittance', 'submission')", name="source"),
        UniqueConstraint("account_id", "invoice_number"),
        Index("ix_invoices_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_invoices_account_id_due_on", "account_id", "due_on"),
        # reconciliation: the invoices an import touched (without it, a scan of every invoice per import)
        Index("ix_invoices_account_id_source_import_id", "account_id", "source_import_id"),
    )


class Payment(AccountKeyedMixin, Base):
    """One Amazon payment run (a remittance), paying many invoices net of deductions."""

    __tablename__ = "payments"

    payment_number: Mapped[str] = mapped_column(String(64))
    payment_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    payment_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    payment_currency: Mapped[str | None] = mapped_column(String(3))
    exchange_rate: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    payment_type: Mapped[str | None] = mapped_column(String(64))
    payment_status: Mapped[str | None] = mapped_column(String(64))
    source_import_id: Mapped[uuid.UUID | None]

    __extra_table_args__ = (
        tenant_fk(["source_import_id"], "imports"),
        UniqueConstraint("account_id", "payment_number"),
        Index("ix_payments_account_id_created_at", "account_id", "created_at", "id"),
    )


class PaymentLine(AccountKeyedMixin, Base):
    """One invoice line of a remittance: what a payment did to one invoice (or deduction document)."""

    __tablename__ = "payment_lines"

    payment_number: Mapped[str] = mapped_column(String(64))
    invoice_number: Mapped[str] = mapped_column(String(64))
    invoice_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    entry_type: Mapped[str] = mapped_column(String(30))
    invoice_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    withholding_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    terms_discount: Mapped[Decimal | None] = mapped_column(MONEY)
    amount_paid: Mapped[Decimal | None] = mapped_column(MONEY)
    remaining_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    ledger_entry_id: Mapped[uuid.UUID | None]
    source_import_id: Mapped[uuid.UUID | None]
    source_row: Mapped[int | None] = mapped_column(Integer)
    natural_key: Mapped[str] = mapped_column(String(300))

    __extra_table_args__ = (
        tenant_fk(["source_import_id"], "imports"),
        CheckConstraint(check_in("entry_type", list(EntryType)), name="entry_type"),
        UniqueConstraint("account_id", "natural_key"),
        Index("ix_payment_lines_account_id_payment_number", "account_id", "payment_number"),
        Index("ix_payment_lines_account_id_invoice_number", "account_id", "invoice_number"),
    )


class InvoiceLine(AccountKeyedMixin, Base):
    """One line of a vendor invoice (an ERP invoice line file): what was invoiced, per ASIN.

    Lines are detail of an invoice, not money of their own: the invoice's ledger entry carries the amount,
    so a line adds no ledger entry. A line file may arrive before or after its invoice file; lines are
    joined to their invoice by number (``(account_id, invoice_number)``), not by a foreign key.
    """

    __tablename__ = "invoice_lines"

    invoice_number: Mapped[str] = mapped_column(String(64))
    asin: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_cost: Mapped[Decimal] = mapped_column(MONEY)
    amount: Mapped[Decimal] = mapped_column(MONEY)  # quantity × unit_cost
    currency: Mapped[str | None] = mapped_column(String(3))  # None: the invoice's currency
    source_import_id: Mapped[uuid.UUID | None]
    source_row: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    natural_key: Mapped[str] = mapped_column(String(300))

    __extra_table_args__ = (
        tenant_fk(["source_import_id"], "imports"),
        CheckConstraint("source_row IS NULL OR source_row > 0", name="source_row"),
        UniqueConstraint("account_id", "natural_key"),
        Index("ix_invoice_lines_account_id_invoice_number", "account_id", "invoice_number"),
    )
