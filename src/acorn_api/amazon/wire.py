"""Pydantic v2 models mirroring the official SP-API wire shapes (the parts ACORN uses).

Every model keeps unknown fields (``extra="allow"``) so nothing Amazon adds later is lost, and
accepts both the camelCase wire names and the snake_case attribute names.  Money amounts are
``Decimal`` parsed from the decimal *string* the API sends -- never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)


class ApiErrorItem(WireModel):
    code: str
    message: str
    details: str | None = None


# ---------------------------------------------------------------- common vendor shapes


class Money(WireModel):
    currency_code: str | None = None
    amount: Decimal | None = None
    unit_of_measure: str | None = None


class ItemQuantity(WireModel):
    amount: int | None = None
    unit_of_measure: str | None = None
    unit_size: int | None = None


class Address(WireModel):
    name: str | None = None
    address_line1: str | None = Field(default=None, alias="addressLine1")
    address_line2: str | None = Field(default=None, alias="addressLine2")
    address_line3: str | None = Field(default=None, alias="addressLine3")
    city: str | None = None
    county: str | None = None
    district: str | None = None
    state_or_region: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    phone: str | None = None


class TaxRegistrationDetails(WireModel):
    tax_registration_type: str | None = None
    tax_registration_number: str | None = None


class PartyIdentification(WireModel):
    party_id: str
    address: Address | None = None
    tax_info: TaxRegistrationDetails | None = None


class Pagination(WireModel):
    next_token: str | None = None


class TransactionId(WireModel):
    transaction_id: str


# ---------------------------------------------------------------- vendorOrders: purchase orders


class ImportDetails(WireModel):
    method_of_payment: str | None = None
    international_commercial_terms: str | None = None
    port_of_delivery: str | None = None
    import_containers: str | None = None
    shipping_instructions: str | None = None


class OrderItem(WireModel):
    item_sequence_number: str
    amazon_product_identifier: str | None = None
    vendor_product_identifier: str | None = None
    ordered_quantity: ItemQuantity | None = None
    is_back_order_allowed: bool | None = None
    net_cost: Money | None = None
    list_price: Money | None = None


class OrderDetails(WireModel):
    purchase_order_date: datetime | None = None
    purchase_order_changed_date: datetime | None = None
    purchase_order_state_changed_date: datetime | None = None
    purchase_order_type: str | None = None
    import_details: ImportDetails | None = None
    deal_code: str | None = None
    payment_method: str | None = None
    buying_party: PartyIdentification | None = None
    selling_party: PartyIdentification | None = None
    ship_to_party: PartyIdentification | None = None
    bill_to_party: PartyIdentification | None = None
    # ISO-8601 interval strings "start--end"
    ship_window: str | None = None
    delivery_window: str | None = None
    items: list[OrderItem] = Field(default_factory=list)


class PurchaseOrder(WireModel):
    purchase_order_number: str
    purchase_order_state: str
    order_details: OrderDetails | None = None


class PurchaseOrderList(WireModel):
    pagination: Pagination | None = None
    orders: list[PurchaseOrder] = Field(default_factory=list)


class GetPurchaseOrdersResponse(WireModel):
    payload: PurchaseOrderList | None = None
    errors: list[ApiErrorItem] | None = None


class GetPurchaseOrderResponse(WireModel):
    payload: PurchaseOrder
    errors: list[ApiErrorItem] | None = None


# ---------------------------------------------------------------- vendorOrders: statuses


class OrderedQuantityDetails(WireModel):
    updated_date: datetime | None = None
    ordered_quantity: ItemQuantity | None = None
    cancelled_quantity: ItemQuantity | None = None


class ItemOrderedQuantity(WireModel):
    ordered_quantity: ItemQuantity | None = None
    ordered_quantity_details: list[OrderedQuantityDetails] | None = None


class AcknowledgementStatusDetails(WireModel):
    acknowledgement_date: datetime | None = None
    accepted_quantity: ItemQuantity | None = None
    rejected_quantity: ItemQuantity | None = None


class ItemAcknowledgementStatus(WireModel):
    confirmation_status: str | None = None
    accepted_quantity: ItemQuantity | None = None
    rejected_quantity: ItemQuantity | None = None
    acknowledgement_status_details: list[AcknowledgementStatusDetails] | None = None


class ItemReceivingStatus(WireModel):
    receive_status: str | None = None
    received_quantity: ItemQuantity | None = None
    last_receive_date: datetime | None = None


class PurchaseOrderItemStatus(WireModel):
    item_sequence_number: str
    buyer_product_identifier: str | None = None
    vendor_product_identifier: str | None = None
    net_cost: Money | None = None
    list_price: Money | None = None
    ordered_quantity: ItemOrderedQuantity | None = None
    acknowledgement_status: ItemAcknowledgementStatus | None = None
    receiving_status: ItemReceivingStatus | None = None


class PurchaseOrderStatus(WireModel):
    purchase_order_number: str
    purchase_order_status: str | None = None
    purchase_order_date: datetime | None = None
    last_updated_date: datetime | None = None
    selling_party: PartyIdentification | None = None
    ship_to_party: PartyIdentification | None = None
    item_status: list[PurchaseOrderItemStatus] = Field(default_factory=list)


class PurchaseOrderStatusList(WireModel):
    pagination: Pagination | None = None
    orders_status: list[PurchaseOrderStatus] = Field(default_factory=list)


class GetPurchaseOrdersStatusResponse(WireModel):
    payload: PurchaseOrderStatusList | None = None
    errors: list[ApiErrorItem] | None = None


class TransactionIdResponse(WireModel):
    """Response of submitAcknowledgement / submitInvoices."""

    payload: TransactionId
    errors: list[ApiErrorItem] | None = None


# ---------------------------------------------------------------- vendorShipments: GetShipmentDetails


class Shipment(WireModel):
    vendor_shipment_identifier: str
    transaction_type: str | None = None
    buyer_reference_number: str | None = None
    transaction_date: datetime | None = None
    current_shipment_status: str | None = None
    # the official model really spells this one with a lower-case "s"
    current_shipment_status_date: datetime | None = Field(default=None, alias="currentshipmentStatusDate")
    shipment_status_details: list[dict[str, Any]] | None = None
    shipment_create_date: datetime | None = None
    shipment_confirm_date: datetime | None = None
    package_label_create_date: datetime | None = None
    shipment_freight_term: str | None = None
    selling_party: PartyIdentification | None = None
    ship_from_party: PartyIdentification | None = None
    ship_to_party: PartyIdentification | None = None
    shipment_measurements: dict[str, Any] | None = None
    collect_freight_pickup_details: dict[str, Any] | None = None
    purchase_orders: list[dict[str, Any]] | None = None
    import_details: dict[str, Any] | None = None
    containers: list[dict[str, Any]] | None = None
    transportation_details: dict[str, Any] | None = None


class ShipmentDetails(WireModel):
    pagination: Pagination | None = None
    shipments: list[Shipment] = Field(default_factory=list)


class GetShipmentDetailsResponse(WireModel):
    payload: ShipmentDetails | None = None
    errors: list[ApiErrorItem] | None = None


# ---------------------------------------------------------------- vendorTransactionStatus


class Transaction(WireModel):
    transaction_id: str
    status: str
    errors: list[ApiErrorItem] | None = None


class TransactionStatus(WireModel):
    transaction_status: Transaction


class GetTransactionResponse(WireModel):
    payload: TransactionStatus
    errors: list[ApiErrorItem] | None = None


# ---------------------------------------------------------------- reports 2021-06-30 (not payload-wrapped)


class CreateReportResponse(WireModel):
    report_id: str


class Report(WireModel):
    report_id: str
    report_type: str
    processing_status: str
    created_time: datetime | None = None
    marketplace_ids: list[str] | None = None
    data_start_time: datetime | None = None
    data_end_time: datetime | None = None
    report_schedule_id: str | None = None
    processing_start_time: datetime | None = None
    processing_end_time: datetime | None = None
    report_document_id: str | None = None


class ReportDocument(WireModel):
    report_document_id: str
    url: str
    compression_algorithm: str | None = None


# ---------------------------------------------------------------- client-side containers

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where to continue a windowed listing: the window start and the page token inside it."""

    window_start: datetime | None
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paginated listing, with the exact bytes Amazon returned (for archiving)."""

    items: list[T]
    raw: bytes
    request_id: str | None
    window_start: datetime | None
    """``None`` for unwindowed listings (e.g. shipments looked up without a created range)."""
    window_end: datetime | None
    page_token: str | None
    """The ``nextToken`` sent to obtain this page (``None`` for a window's first page)."""
    next_token: str | None
    """The ``nextToken`` this page returned (``None`` when the window is exhausted)."""
    resume_after: ResumePoint | None
    """Pass as ``resume=`` to continue right after this page; ``None`` when the listing is complete."""


@dataclass(frozen=True, slots=True)
class ApiResult(Generic[T]):
    """A single (non-paginated) response: parsed value plus raw bytes and request id."""

    value: T
    raw: bytes
    request_id: str | None
