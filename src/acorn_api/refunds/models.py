"""Refund case tables: the case itself and its links to ledger entries.

``refund_cases`` is hash-partitioned by ``account_id`` like the ledger (DESIGN.md §5). One case per
deduction: ``UNIQUE (account_id, origin_entry_id)`` makes case creation idempotent however often the
job runs. Amounts are magnitudes (positive): what Amazon took, what came back, what was written off.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Date, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import AccountKeyedMixin, Base, check_in, tenant_fk
from acorn_api.ledger import models as _ledger_models  # noqa: F401 - ledger_entries, a foreign key target

MONEY = Numeric(20, 4)


class CaseType(StrEnum):
    customer_return = "customer_return"
    warehouse_damage = "warehouse_damage"
    shortage = "shortage"
    price_claim = "price_claim"
    compliance_chargeback = "compliance_chargeback"
    coop = "coop"
    provision = "provision"
    price_protection = "price_protection"
    other = "other"


class CaseStatus(StrEnum):
    open = "open"
    needs_review = "needs_review"
    ready_to_dispute = "ready_to_dispute"
    disputed = "disputed"
    redisputed = "redisputed"
    recovered = "recovered"
    partially_recovered = "partially_recovered"
    denied = "denied"
    written_off = "written_off"
    closed = "closed"


class LinkRole(StrEnum):
    origin = "origin"  # the deduction that opened the case
    reversal = "reversal"  # money that came back against it (SCR, PCR, provision reversal)
    payment = "payment"  # a payment line that settled the short-paid invoice
    related = "related"


class RefundCase(AccountKeyedMixin, Base):
    __tablename__ = "refund_cases"

    origin_entry_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(String(30))
    subtype: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30), default=CaseStatus.open, server_default="open")
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    recovered_amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    written_off_amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    store_id: Mapped[uuid.UUID | None]
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    po_number: Mapped[str | None] = mapped_column(String(64))
    asin: Mapped[str | None] = mapped_column(String(20))
    payment_number: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(128))
    opened_on: Mapped[date] = mapped_column(Date)
    dispute_deadline: Mapped[date | None] = mapped_column(Date)
    deadline_missed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    priority: Mapped[Decimal] = mapped_column(Numeric(20, 4), default=Decimal(0), server_default="0")
    likelihood: Mapped[Decimal] = mapped_column(Numeric(5, 4), default=Decimal(0), server_default="0")
    expected_recovery: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    assignee: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    dispute_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dispute_reference: Mapped[str | None] = mapped_column(String(200))
    rule_id: Mapped[uuid.UUID | None]
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __extra_table_args__ = (
        tenant_fk(["origin_entry_id"], "ledger_entries"),
        tenant_fk(["store_id"], "stores"),
        CheckConstraint(check_in("type", list(CaseType)), name="type"),
        CheckConstraint(check_in("status", list(CaseStatus)), name="status"),
        CheckConstraint("amount >= 0 AND recovered_amount >= 0 AND written_off_amount >= 0", name="amounts"),
        UniqueConstraint("account_id", "origin_entry_id"),
        Index("ix_refund_cases_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_refund_cases_account_id_status_priority", "account_id", "status", "priority"),
        Index("ix_refund_cases_account_id_dispute_deadline", "account_id", "dispute_deadline"),
        Index("ix_refund_cases_account_id_invoice_number", "account_id", "invoice_number"),
        {"postgresql_partition_by": "HASH (account_id)"},
    )


class CaseEntry(AccountKeyedMixin, Base):
    """A ledger entry linked to a case: the deduction that opened it, and what later moved its money."""

    __tablename__ = "refund_case_entries"

    case_id: Mapped[uuid.UUID]
    ledger_entry_id: Mapped[uuid.UUID]
    role: Mapped[str] = mapped_column(String(20))

    __extra_table_args__ = (
        tenant_fk(["case_id"], "refund_cases", ondelete="CASCADE"),
        tenant_fk(["ledger_entry_id"], "ledger_entries"),
        CheckConstraint(check_in("role", list(LinkRole)), name="role"),
        UniqueConstraint("account_id", "case_id", "ledger_entry_id"),
        Index("ix_refund_case_entries_account_id_ledger_entry_id", "account_id", "ledger_entry_id"),
    )
