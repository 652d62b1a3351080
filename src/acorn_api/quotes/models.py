"""Quotes (cost prices per item and scope), their timeline and the account's approval policy.

Scope: a quote prices one item for exactly one of
  * a store (``store_id``),
  * a marketplace (``region`` + ``marketplace``), or
  * a whole region (``region`` only) in one currency.
``scope_key`` is a generated column naming that scope (``store:<id>``, ``marketplace:US``,
``region:NA:USD``); the exclusion constraint uses it to forbid two approved quotes for the same item and
scope whose periods overlap. Periods are half-open ``[effective_from, effective_to)``; a null
``effective_to`` means "until further notice".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKeyConstraint,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import Base, TenantMixin


class QuoteStatus(StrEnum):
    draft = "draft"
    pending_approval = "pending_approval"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"
    expired = "expired"
    withdrawn = "withdrawn"


class ScopeType(StrEnum):
    store = "store"
    marketplace = "marketplace"
    region = "region"


# Statuses whose period really held the price: what resolution and history read.
PRICED_STATUSES = (QuoteStatus.approved.value, QuoteStatus.expired.value)

SCOPE_KEY_SQL = (
    "CASE WHEN store_id IS NOT NULL THEN 'store:' || store_id::text "
    "WHEN marketplace IS NOT NULL THEN 'marketplace:' || marketplace "
    "ELSE 'region:' || region || ':' || currency END"
)


class Quote(TenantMixin, Base):
    __tablename__ = "quotes"

    item_id: Mapped[uuid.UUID]
    scope_type: Mapped[str] = mapped_column(String(12))
    store_id: Mapped[uuid.UUID | None]
    region: Mapped[str | None] = mapped_column(String(2))
    marketplace: Mapped[str | None] = mapped_column(String(2))
    scope_key: Mapped[str] = mapped_column(Text, Computed(SCOPE_KEY_SQL, persisted=True))
    currency: Mapped[str] = mapped_column(String(3))
    cost_price: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    list_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    min_order_quantity: Mapped[int | None]
    effective_from: Mapped[datetime]
    effective_to: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(1000))
    override_reason: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="draft", server_default="draft")
    created_by: Mapped[uuid.UUID | None]
    submitted_by: Mapped[uuid.UUID | None]
    submitted_at: Mapped[datetime | None]
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(1000))
    baseline_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    change_pct: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    superseded_by_id: Mapped[uuid.UUID | None]
    import_id: Mapped[uuid.UUID | None]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
    __extra_table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "item_id"], ["items.account_id", "items.id"], ondelete="RESTRICT", name="fk_quotes_item"
        ),
        ForeignKeyConstraint(
            ["account_id", "store_id"], ["stores.account_id", "stores.id"], ondelete="RESTRICT", name="fk_quotes_store"
        ),
        CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved', 'rejected', 'superseded', 'expired', 'withdrawn')",
            name="status",
        ),
        CheckConstraint(
            "(scope_type = 'store' AND store_id IS NOT NULL AND region IS NULL AND marketplace IS NULL) "
            "OR (scope_type = 'marketplace' AND store_id IS NULL AND region IS NOT NULL AND marketplace IS NOT NULL) "
            "OR (scope_type = 'region' AND store_id IS NULL AND region IS NOT NULL AND marketplace IS NULL)",
            name="scope",
        ),
        CheckConstraint("cost_price > 0", name="cost_price_positive"),
        CheckConstraint("list_price IS NULL OR list_price > 0", name="list_price_positive"),
        CheckConstraint("min_order_quantity IS NULL OR min_order_quantity > 0", name="min_order_quantity"),
        CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name="period"),
        ExcludeConstraint(
            ("account_id", "="),
            ("item_id", "="),
            ("scope_key", "="),
            (text("tstzrange(effective_from, effective_to)"), "&&"),
            where=text("status = 'approved'"),
            using="gist",
            name="ex_quotes_approved_no_overlap",
        ),
        # Effective-price lookups (one item, up to three scope keys) and per-store exports (all items of up
        # to three scope keys) both descend this index.
        Index("ix_quotes_scope", "account_id", "scope_key", "item_id", "effective_from"),
        Index("ix_quotes_account_id_item_id", "account_id", "item_id"),
        Index("ix_quotes_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_quotes_account_id_store_id", "account_id", "store_id"),
        Index("ix_quotes_account_id_status", "account_id", "status"),
    )


class QuoteEvent(TenantMixin, Base):
    """One step in a quote's timeline; written in the transaction that took the step."""

    __tablename__ = "quote_events"

    quote_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID | None]
    actor_role: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(1000))
    version: Mapped[int]
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")

    __extra_table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "quote_id"],
            ["quotes.account_id", "quotes.id"],
            ondelete="CASCADE",
            name="fk_quote_events_quote",
        ),
        Index("ix_quote_events_account_id_quote_id_created_at", "account_id", "quote_id", "created_at"),
    )


class QuotePolicy(TenantMixin, Base):
    """Per-account approval rules; an account without a row uses the defaults."""

    __tablename__ = "quote_policies"

    finance_threshold_pct: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    hard_cap_pct: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    conflict_tolerance_pct: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
    __extra_table_args__ = (
        UniqueConstraint("account_id", name="uq_quote_policies_account_id"),
        CheckConstraint("finance_threshold_pct >= 0", name="finance_threshold_pct"),
        CheckConstraint("hard_cap_pct >= finance_threshold_pct", name="hard_cap_pct"),
        CheckConstraint("conflict_tolerance_pct >= 0", name="conflict_tolerance_pct"),
    )


class InvalidTransition(ValueError):
    def __init__(self, action: str, current: str, allowed_from: frozenset[QuoteStatus]) -> None:
        self.action, self.current, self.allowed_from = action, current, allowed_from
        wanted = " or ".join(sorted(s.value for s in allowed_from))
        super().__init__(f"Cannot {action} a quote that is {current}; only a quote that is {wanted} can be.")


# The whole state machine: action → (statuses it may start from, status it ends in).
TRANSITIONS: dict[str, tuple[frozenset[QuoteStatus], QuoteStatus]] = {
    "submit": (frozenset({QuoteStatus.draft}), QuoteStatus.pending_approval),
    "approve": (frozenset({QuoteStatus.pending_approval}), QuoteStatus.approved),
    "reject": (frozenset({QuoteStatus.pending_approval}), QuoteStatus.rejected),
    "withdraw": (frozenset({QuoteStatus.draft, QuoteStatus.pending_approval}), QuoteStatus.withdrawn),
    "supersede": (frozenset({QuoteStatus.approved}), QuoteStatus.superseded),
    "expire": (frozenset({QuoteStatus.approved}), QuoteStatus.expired),
}


def next_status(action: str, current: str) -> QuoteStatus:
    """The status ``action`` leads to from ``current``, or :class:`InvalidTransition`."""
    allowed_from, target = TRANSITIONS[action]
    if QuoteStatus(current) not in allowed_from:
        raise InvalidTransition(action, current, allowed_from)
    return target
