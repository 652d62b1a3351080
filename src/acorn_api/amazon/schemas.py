"""Request and response shapes of connections, sync runs, purchase orders, shipments, documents, invoices."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from acorn_api.amazon.schedule import DEFAULT_SCHEDULE, check_schedule
from acorn_api.core.money import Amount, CurrencyCode, Money
from acorn_api.core.regions import MARKETPLACE_REGION, Marketplace, Region
from acorn_api.core.time import UTCDateTime
from acorn_api.stores.schemas import VendorCode, VendorCodes


class ConnectionStatus(StrEnum):
    active = "active"
    paused = "paused"
    error = "error"


class SyncKind(StrEnum):
    orders = "orders"
    order_status = "order_status"
    shipments = "shipments"
    reports = "reports"


class SyncStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    partially_succeeded = "partially_succeeded"


class RangeField(StrEnum):
    created = "created"
    changed = "changed"


class SubmissionStatus(StrEnum):
    queued = "queued"
    submitted = "submitted"
    succeeded = "succeeded"
    failed = "failed"


class InvoiceType(StrEnum):
    invoice = "Invoice"
    credit_note = "CreditNote"


def _check_endpoint(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ValueError("must be an http(s) URL, e.g. https://sandbox.sellingpartnerapi-na.amazon.com")
    return value.rstrip("/")


def _check_marketplaces(values: list[Marketplace]) -> list[Marketplace]:
    if len(set(values)) != len(values):
        raise ValueError("marketplaces must not repeat")
    return values


def marketplaces_outside(region: Region, marketplaces: list[Marketplace]) -> str | None:
    """Why ``marketplaces`` cannot be served by ``region``'s SP-API host, or None: each marketplace belongs to
    exactly one region (``MARKETPLACE_REGION``), and a connection calls one region's host."""
    foreign = [m for m in marketplaces if MARKETPLACE_REGION[m] != region]
    if not foreign:
        return None
    return "; ".join(
        f"marketplace {m.value} is in region {MARKETPLACE_REGION[m].value}, not {region.value}" for m in foreign
    )


def _check_marketplaces_in_region(marketplaces: list[Marketplace] | None, info: ValidationInfo) -> None:
    region = info.data.get("region")
    if region is not None and marketplaces is not None and (problem := marketplaces_outside(region, marketplaces)):
        raise ValueError(problem)


Name = Annotated[str, Field(min_length=1, max_length=200)]
Endpoint = Annotated[
    str,
    Field(
        max_length=500,
        pattern=r"^https?://[^\s/?#]+[^\s]*$",
        description="replaces the region's host: one of Amazon's SP-API hosts (e.g. its sandbox); other hosts "
        "(the simulator) only outside production and staging, when the operator lists them in "
        "ACORN_SPAPI_ALLOWED_HOSTS",
        examples=["https://sandbox.sellingpartnerapi-na.amazon.com"],
    ),
    AfterValidator(_check_endpoint),
]
Marketplaces = Annotated[list[Marketplace], Field(max_length=25), AfterValidator(_check_marketplaces)]
Secret = Annotated[str, Field(min_length=1, max_length=2000, description="write-only; never returned")]
Schedule = Annotated[
    str,
    Field(
        max_length=100,
        description="how often the orders sync runs: ISO 8601 duration (`PT1H`), seconds (`3600`) or cron",
        examples=["PT1H", "0 */2 * * *"],
    ),
    AfterValidator(check_schedule),
]


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    region: Region
    endpoint: Endpoint | None = None
    marketplaces: Marketplaces = Field(default_factory=list)
    vendor_codes: VendorCodes = Field(default_factory=list)
    client_id: Secret
    client_secret: Secret
    refresh_token: Secret
    credentials_rotate_by: date | None = Field(default=None, description="when the LWA client secret expires")
    sync_schedule: Schedule = DEFAULT_SCHEDULE
    status: ConnectionStatus = ConnectionStatus.active

    @field_validator("marketplaces")
    @classmethod
    def _marketplaces_in_region(cls, marketplaces: list[Marketplace], info: ValidationInfo) -> list[Marketplace]:
        _check_marketplaces_in_region(marketplaces, info)
        return marketplaces


class ConnectionUpdate(BaseModel):
    """Only the fields present change. Sending new credentials replaces all three."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    region: Region | None = Field(
        default=None, description="a new region needs new `client_id`, `client_secret` and `refresh_token` too"
    )
    endpoint: Endpoint | None = Field(
        default=None,
        description="a new endpoint (or `null`, back to the region's host) needs new `client_id`, "
        "`client_secret` and `refresh_token` in the same request",
    )
    marketplaces: Marketplaces | None = None
    vendor_codes: VendorCodes | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    credentials_rotate_by: date | None = None
    sync_schedule: Schedule | None = None
    status: ConnectionStatus | None = None
    version: int | None = Field(default=None, ge=1, description="the version you read; stale → 409")

    @field_validator(
        "name", "region", "marketplaces", "vendor_codes", "sync_schedule", "status", "version", mode="before"
    )
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value

    @field_validator("marketplaces")
    @classmethod
    def _marketplaces_in_region(
        cls, marketplaces: list[Marketplace] | None, info: ValidationInfo
    ) -> list[Marketplace] | None:
        # both in the request; a change of only one of them is checked against the stored other by the service
        _check_marketplaces_in_region(marketplaces, info)
        return marketplaces

    @model_validator(mode="after")
    def _credentials_together(self) -> ConnectionUpdate:
        given = [self.client_id is not None, self.client_secret is not None, self.refresh_token is not None]
        if any(given) and not all(given):
            raise ValueError("client_id, client_secret and refresh_token are replaced together")
        return self


class ConnectionOut(BaseModel):
    id: uuid.UUID
    name: str
    region: Region
    endpoint: str | None
    marketplaces: list[str]
    vendor_codes: list[str]
    credentials_updated_at: UTCDateTime
    credentials_rotate_by: date | None
    sync_schedule: str
    next_sync_at: UTCDateTime | None
    status: ConnectionStatus
    last_success_at: UTCDateTime | None
    last_error: str | None
    warnings: list[str] = Field(description="things to act on, e.g. credentials that must be rotated soon")
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class ConnectionDeleted(BaseModel):
    id: uuid.UUID
    deleted: bool


class ConnectionTestResult(BaseModel):
    ok: bool
    latency_ms: int = Field(description="token exchange plus one getPurchaseOrders call")
    request_id: str | None = Field(description="Amazon's x-amzn-RequestId of the call, when one was made")
    error_code: str | None
    error_message: str | None


class SyncRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: SyncKind
    from_: UTCDateTime | None = Field(
        default=None, alias="from", description="start of the range (default: incremental)"
    )
    to: UTCDateTime | None = Field(default=None, description="end of the range (default: now)")
    range_field: RangeField | None = Field(
        default=None,
        description="`created` selects by creation date, `changed` by last change (incremental). Default: "
        "`changed` since the last successful run of this kind, or `created` over the last 181 days for the first.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> SyncRunCreate:
        if self.from_ is not None and self.to is not None and self.from_ >= self.to:
            raise ValueError("from must be before to")
        return self


class SyncRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connection_id: uuid.UUID
    kind: SyncKind
    status: SyncStatus
    trigger: str
    range_field: RangeField
    range_from: UTCDateTime
    range_to: UTCDateTime
    fetched: int
    created: int
    updated: int
    unchanged: int
    pages: int
    api_calls: int
    throttled_calls: int
    retries: int
    failed_request_ids: list[str]
    attempts: int = Field(description="how many times a worker started this run")
    resumes: int = Field(description="how many times it continued from a committed page after a worker died")
    details: dict[str, Any]
    error: dict[str, Any] | None
    heartbeat_at: UTCDateTime | None
    started_at: UTCDateTime | None
    finished_at: UTCDateTime | None
    created_at: UTCDateTime
    updated_at: UTCDateTime


class PurchaseOrderItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item_sequence_number: str
    asin: str | None
    vendor_sku: str | None
    ordered_quantity: int | None
    unit_of_measure: str | None
    unit_size: int | None
    is_back_order_allowed: bool | None
    net_cost: Money | None
    list_price: Money | None
    confirmation_status: str | None
    acknowledged_quantity: int | None
    rejected_quantity: int | None
    cancelled_quantity: int | None
    receive_status: str | None
    received_quantity: int | None
    last_received_at: UTCDateTime | None


class Window(BaseModel):
    start: UTCDateTime
    end: UTCDateTime


class PurchaseOrderOut(BaseModel):
    id: uuid.UUID
    purchase_order_number: str
    state: str
    purchase_order_type: str | None
    purchase_order_date: UTCDateTime | None
    changed_at: UTCDateTime | None
    state_changed_at: UTCDateTime | None
    vendor_code: str | None
    store_id: uuid.UUID | None
    connection_id: uuid.UUID
    buying_party_id: str | None
    ship_to_party_id: str | None
    bill_to_party_id: str | None
    deal_code: str | None
    payment_method: str | None
    ship_window: Window | None
    delivery_window: Window | None
    total_net_cost: Money | None
    purchase_order_status: str | None = Field(description="OPEN or CLOSED, from the status sync")
    status_updated_at: UTCDateTime | None
    raw_document_id: uuid.UUID | None = Field(description="the archived Amazon payload this version came from")
    status_raw_document_id: uuid.UUID | None
    created_at: UTCDateTime
    updated_at: UTCDateTime


class PurchaseOrderDetail(PurchaseOrderOut):
    items: list[PurchaseOrderItemOut]


class ShipmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    vendor_shipment_identifier: str
    transaction_type: str | None
    buyer_reference_number: str | None
    current_status: str | None
    current_status_at: UTCDateTime | None
    shipment_created_at: UTCDateTime | None
    shipment_confirmed_at: UTCDateTime | None
    shipped_at: UTCDateTime | None
    estimated_delivery_at: UTCDateTime | None
    delivered_at: UTCDateTime | None
    vendor_code: str | None
    ship_from_party_id: str | None
    ship_to_party_id: str | None
    carrier_code: str | None
    bill_of_lading_number: str | None
    carton_count: int | None
    purchase_order_numbers: list[str]
    raw_document_id: uuid.UUID | None
    connection_id: uuid.UUID
    created_at: UTCDateTime
    updated_at: UTCDateTime


class RawDocumentOut(BaseModel):
    id: uuid.UUID
    sha256: str
    source: str
    content_type: str
    compression: str
    size_bytes: int
    compressed_bytes: int
    request_id: str | None
    fetched_at: UTCDateTime
    metadata: dict[str, Any]
    payload: Any = Field(description="the decompressed document: JSON when it is JSON, else text")
    payload_included: bool = Field(
        default=True, description="false when the document is larger than the server inlines (`payload` is null)"
    )
    created_at: UTCDateTime


class InvoiceItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_sequence_number: int = Field(ge=1, le=10_000)
    purchase_order_number: str = Field(min_length=1, max_length=64)
    asin: str | None = Field(default=None, max_length=20)
    vendor_sku: str | None = Field(default=None, max_length=64)
    quantity: int = Field(ge=1, le=10_000_000)
    net_cost: Amount = Field(description="unit cost, in the invoice's currency")

    @field_validator("net_cost")
    @classmethod
    def _non_negative(cls, value: Decimal) -> Decimal:
        if value < 0 or value.as_tuple().exponent < -4:  # type: ignore[operator]
            raise ValueError("must be ≥ 0 with at most 4 decimals")
        return value


class InvoiceSubmissionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_id: uuid.UUID
    invoice_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._/-]+$")
    invoice_type: InvoiceType = InvoiceType.invoice
    date: UTCDateTime
    remit_to_party_id: VendorCode
    currency: CurrencyCode
    items: list[InvoiceItemIn] = Field(min_length=1, max_length=1000)
    total: Amount | None = Field(default=None, description="defaults to the sum of quantity × net_cost")


class InvoiceSubmissionOut(BaseModel):
    id: uuid.UUID
    connection_id: uuid.UUID
    invoice_number: str
    invoice_type: InvoiceType
    purchase_order_numbers: list[str]
    total: Money
    status: SubmissionStatus
    transaction_id: str | None
    transaction_status: str | None = Field(description="Amazon's: Processing, Success or Failure")
    errors: list[dict[str, Any]]
    request_id: str | None
    submitted_at: UTCDateTime | None
    completed_at: UTCDateTime | None
    raw_document_id: uuid.UUID | None
    created_at: UTCDateTime
    updated_at: UTCDateTime
