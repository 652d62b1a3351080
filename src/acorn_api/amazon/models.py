"""Vendor connector tables: connections, sync runs, purchase orders, shipments, invoice submissions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.accounts import models as _accounts_models  # noqa: F401 - foreign key targets must be mapped
from acorn_api.core.models import Base, TenantMixin
from acorn_api.ledger import archive as _archive  # noqa: F401 - raw_documents, a foreign key target
from acorn_api.stores import models as _stores_models  # noqa: F401 - stores, a foreign key target

CONNECTION_STATUSES = ("active", "paused", "error")
SYNC_KINDS = ("orders", "order_status", "shipments", "reports")
SYNC_STATUSES = ("queued", "running", "succeeded", "failed", "partially_succeeded")
ACTIVE_SYNC_STATUSES = ("queued", "running")
SUBMISSION_STATUSES = ("queued", "submitted", "succeeded", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _tenant_fk(columns: list[str], table: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["account_id", *columns], [f"{table}.account_id", f"{table}.id"], ondelete=ondelete)


class VendorConnection(TenantMixin, Base):
    """One set of SP-API credentials (a selling partner authorisation) and how often to sync it.

    The LWA client id, secret and refresh token are stored only encrypted (``crypto.py``). A deleted
    connection is kept (``deleted_at``) because the purchase orders and runs it produced stay evidence.
    """

    __tablename__ = "vendor_connections"

    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(2))
    endpoint: Mapped[str | None] = mapped_column(String(500))
    marketplaces: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    vendor_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    lwa_client_id_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    lwa_client_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    lwa_refresh_token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    credentials_updated_at: Mapped[datetime]
    credentials_rotate_by: Mapped[date | None] = mapped_column(Date)
    sync_schedule: Mapped[str] = mapped_column(String(100), default="PT1H", server_default="PT1H")
    next_sync_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - read by SQLAlchemy
    __extra_table_args__ = (
        CheckConstraint(_in("status", CONNECTION_STATUSES), name="status"),
        CheckConstraint("region IN ('NA', 'EU', 'FE')", name="region"),
        Index(
            "uq_vendor_connections_account_id_name",
            "account_id",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_vendor_connections_next_sync_at", "next_sync_at", postgresql_where=text("deleted_at IS NULL")),
    )


class SyncRun(TenantMixin, Base):
    """One sync of one kind for one connection, committed page by page with its watermark.

    ``watermark`` is ``{"window_start": ..., "next_token": ...}`` of the last committed page: a worker that
    dies resumes right after it. Only one run per (connection, kind) may be queued or running.
    """

    __tablename__ = "sync_runs"

    connection_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(30), default="queued", server_default="queued")
    trigger: Mapped[str] = mapped_column(String(20), default="manual", server_default="manual")
    range_field: Mapped[str] = mapped_column(String(20), default="created", server_default="created")
    range_from: Mapped[datetime]
    range_to: Mapped[datetime]
    watermark: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    fetched: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unchanged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    api_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    throttled_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_request_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resumes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    worker_token: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __extra_table_args__ = (
        _tenant_fk(["connection_id"], "vendor_connections", ondelete="CASCADE"),
        CheckConstraint(_in("kind", SYNC_KINDS), name="kind"),
        CheckConstraint(_in("status", SYNC_STATUSES), name="status"),
        CheckConstraint("trigger IN ('manual', 'schedule')", name="trigger"),
        CheckConstraint("range_field IN ('created', 'changed')", name="range_field"),
        CheckConstraint("range_from < range_to", name="range"),
        Index(
            "uq_sync_runs_one_active_per_kind",
            "account_id",
            "connection_id",
            "kind",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_sync_runs_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_sync_runs_heartbeat_at", "heartbeat_at", postgresql_where=text("status = 'running'")),
    )


class PurchaseOrder(TenantMixin, Base):
    """A purchase order as Amazon last described it, keyed by its number within the account."""

    __tablename__ = "purchase_orders"

    connection_id: Mapped[uuid.UUID]
    store_id: Mapped[uuid.UUID | None]
    purchase_order_number: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    purchase_order_type: Mapped[str | None] = mapped_column(String(40))
    purchase_order_date: Mapped[datetime | None]
    changed_at: Mapped[datetime | None]
    state_changed_at: Mapped[datetime | None]
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    buying_party_id: Mapped[str | None] = mapped_column(String(64))
    ship_to_party_id: Mapped[str | None] = mapped_column(String(64))
    bill_to_party_id: Mapped[str | None] = mapped_column(String(64))
    deal_code: Mapped[str | None] = mapped_column(String(64))
    payment_method: Mapped[str | None] = mapped_column(String(40))
    ship_window_start: Mapped[datetime | None]
    ship_window_end: Mapped[datetime | None]
    delivery_window_start: Mapped[datetime | None]
    delivery_window_end: Mapped[datetime | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    total_net_cost: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    purchase_order_status: Mapped[str | None] = mapped_column(String(20))
    status_updated_at: Mapped[datetime | None]
    raw_document_id: Mapped[uuid.UUID | None]
    status_raw_document_id: Mapped[uuid.UUID | None]
    sync_run_id: Mapped[uuid.UUID | None]

    __extra_table_args__ = (
        UniqueConstraint("account_id", "purchase_order_number"),
        _tenant_fk(["connection_id"], "vendor_connections"),
        _tenant_fk(["store_id"], "stores"),
        _tenant_fk(["raw_document_id"], "raw_documents"),
        _tenant_fk(["status_raw_document_id"], "raw_documents"),
        CheckConstraint("state IN ('New', 'Acknowledged', 'Closed')", name="state"),
        CheckConstraint("total_net_cost IS NULL OR currency IS NOT NULL", name="money_has_currency"),
        Index("ix_purchase_orders_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_purchase_orders_account_id_purchase_order_date", "account_id", "purchase_order_date"),
        Index("ix_purchase_orders_account_id_store_id", "account_id", "store_id"),
    )


class PurchaseOrderItem(TenantMixin, Base):
    __tablename__ = "purchase_order_items"

    purchase_order_id: Mapped[uuid.UUID]
    item_sequence_number: Mapped[str] = mapped_column(String(20))
    asin: Mapped[str | None] = mapped_column(String(20))
    vendor_sku: Mapped[str | None] = mapped_column(String(64))
    ordered_quantity: Mapped[int | None]
    unit_of_measure: Mapped[str | None] = mapped_column(String(20))
    unit_size: Mapped[int | None]
    is_back_order_allowed: Mapped[bool | None]
    net_cost: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    list_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    confirmation_status: Mapped[str | None] = mapped_column(String(30))
    acknowledged_quantity: Mapped[int | None]
    rejected_quantity: Mapped[int | None]
    cancelled_quantity: Mapped[int | None]
    receive_status: Mapped[str | None] = mapped_column(String(30))
    received_quantity: Mapped[int | None]
    last_received_at: Mapped[datetime | None]

    __extra_table_args__ = (
        UniqueConstraint("account_id", "purchase_order_id", "item_sequence_number"),
        _tenant_fk(["purchase_order_id"], "purchase_orders", ondelete="CASCADE"),
        CheckConstraint("(net_cost IS NULL AND list_price IS NULL) OR currency IS NOT NULL", name="money_has_currency"),
        Index("ix_purchase_order_items_account_id_asin", "account_id", "asin"),
    )


class Shipment(TenantMixin, Base):
    """An advance shipment notice as Amazon reports it (GetShipmentDetails)."""

    __tablename__ = "shipments"

    connection_id: Mapped[uuid.UUID]
    vendor_shipment_identifier: Mapped[str] = mapped_column(String(100))
    transaction_type: Mapped[str | None] = mapped_column(String(20))
    buyer_reference_number: Mapped[str | None] = mapped_column(String(64))
    current_status: Mapped[str | None] = mapped_column(String(40))
    current_status_at: Mapped[datetime | None]
    shipment_created_at: Mapped[datetime | None]
    shipment_confirmed_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    estimated_delivery_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    ship_from_party_id: Mapped[str | None] = mapped_column(String(64))
    ship_to_party_id: Mapped[str | None] = mapped_column(String(64))
    carrier_code: Mapped[str | None] = mapped_column(String(20))
    bill_of_lading_number: Mapped[str | None] = mapped_column(String(64))
    carton_count: Mapped[int | None]
    purchase_order_numbers: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    raw_document_id: Mapped[uuid.UUID | None]
    sync_run_id: Mapped[uuid.UUID | None]

    __extra_table_args__ = (
        UniqueConstraint("account_id", "vendor_shipment_identifier"),
        _tenant_fk(["connection_id"], "vendor_connections"),
        _tenant_fk(["raw_document_id"], "raw_documents"),
        Index("ix_shipments_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_shipments_purchase_order_numbers", "purchase_order_numbers", postgresql_using="gin"),
    )


class InvoiceSubmission(TenantMixin, Base):
    """An ERP invoice sent to Amazon (submitInvoices) and the outcome of its transaction."""

    __tablename__ = "invoice_submissions"

    connection_id: Mapped[uuid.UUID]
    invoice_number: Mapped[str] = mapped_column(String(64))
    invoice_type: Mapped[str] = mapped_column(String(20))
    purchase_order_numbers: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), default="queued", server_default="queued")
    transaction_id: Mapped[str | None] = mapped_column(String(128))
    transaction_status: Mapped[str | None] = mapped_column(String(20))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    request_id: Mapped[str | None] = mapped_column(String(128))
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    submitted_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    raw_document_id: Mapped[uuid.UUID | None]

    __extra_table_args__ = (
        UniqueConstraint("account_id", "connection_id", "invoice_number"),
        _tenant_fk(["connection_id"], "vendor_connections"),
        _tenant_fk(["raw_document_id"], "raw_documents"),
        CheckConstraint(_in("status", SUBMISSION_STATUSES), name="status"),
        CheckConstraint("invoice_type IN ('Invoice', 'CreditNote')", name="invoice_type"),
        Index("ix_invoice_submissions_account_id_created_at", "account_id", "created_at", "id"),
    )
