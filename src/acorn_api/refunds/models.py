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
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Date, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import AccountKeyedMixin, Base, check_in, tenant_fk
from acorn_api.ledger import models as _ledger_models  # noqa: F401 - ledger_entries, a foreign key target
from acorn_api.stores import models as _stores_models  # noqa: F401 - stores, a foreign key target

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
    origin_entry_type: Mapped[str] = mapped_column(String(30))
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
    invoice_due_on: Mapped[date | None] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    dispute_deadline: Mapped[date | None] = mapped_column(Date)
    deadline_missed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    deadline_alert_days: Mapped[int | None] = mapped_column(Integer)
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
        Index("ix_refund_cases_account_id_status_priority", "account_id", "status", "priority", "id"),
        # keyset pages for each sort order of the list: (sort value, id)
        Index("ix_refund_cases_account_id_priority_id", "account_id", "priority", "id"),
        Index("ix_refund_cases_account_id_amount_id", "account_id", "amount", "id"),
        Index("ix_refund_cases_account_id_dispute_deadline_id", "account_id", "dispute_deadline", "id"),
        Index("ix_refund_cases_account_id_invoice_number", "account_id", "invoice_number"),
        # reconciliation: cases worked since the last matching run (without it, a scan of every case per import)
        Index("ix_refund_cases_account_id_updated_at", "account_id", "updated_at"),
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


class CaseEventKind(StrEnum):
    created = "created"
    status_changed = "status_changed"
    note = "note"
    entry_linked = "entry_linked"
    reclassified = "reclassified"
    updated = "updated"
    deadline_approaching = "deadline_approaching"
    deadline_missed = "deadline_missed"


class CaseEvent(AccountKeyedMixin, Base):
    """One line of a case's timeline: a transition, a note, a linked entry, who and when."""

    __tablename__ = "refund_case_events"

    case_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal | None] = mapped_column(MONEY)
    dispute_reference: Mapped[str | None] = mapped_column(String(200))
    ledger_entry_id: Mapped[uuid.UUID | None]
    actor: Mapped[str] = mapped_column(String(100), default="system", server_default="system")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")

    __extra_table_args__ = (
        tenant_fk(["case_id"], "refund_cases", ondelete="CASCADE"),
        CheckConstraint(check_in("kind", list(CaseEventKind)), name="kind"),
        Index("ix_refund_case_events_account_id_case_id_created_at", "account_id", "case_id", "created_at", "id"),
    )


class CaseRule(AccountKeyedMixin, Base):
    """A classification rule: what it matches, what it sets. Evaluated in ``position`` order."""

    __tablename__ = "case_rules"

    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    entry_types: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    description_pattern: Mapped[str | None] = mapped_column(String(200))
    pattern_kind: Mapped[str] = mapped_column(String(10), default="contains", server_default="contains")
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[uuid.UUID | None]
    min_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    max_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    set_type: Mapped[str | None] = mapped_column(String(30))
    set_subtype: Mapped[str | None] = mapped_column(String(100))
    set_assignee: Mapped[str | None] = mapped_column(String(200))
    set_tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    needs_review: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __extra_table_args__ = (
        tenant_fk(["store_id"], "stores", ondelete="CASCADE"),
        CheckConstraint("pattern_kind IN ('contains', 'glob')", name="pattern_kind"),
        CheckConstraint(f"set_type IS NULL OR {check_in('set_type', list(CaseType))}", name="set_type"),
        CheckConstraint("min_amount IS NULL OR max_amount IS NULL OR min_amount <= max_amount", name="amount_range"),
        Index("ix_case_rules_account_id_position", "account_id", "position", "created_at"),
    )


class CaseSettings(AccountKeyedMixin, Base):
    """An account's review threshold and per-type dispute windows (absent keys fall back to the defaults)."""

    __tablename__ = "refund_case_settings"

    review_threshold: Mapped[Decimal] = mapped_column(MONEY)
    windows: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __extra_table_args__ = (UniqueConstraint("account_id"),)
