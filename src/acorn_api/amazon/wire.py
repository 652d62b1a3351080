"""Pydantic v2 models mirroring the official SP-API wire shapes (the parts ACORN uses).

Every model keeps unknown fields (``extra="allow"``) so nothing Amazon adds later is lost, and
accepts both the camelCase wire names and the snake_case attribute names.  Money amounts are
``Decimal`` parsed from the decimal *string* the API sends -- never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Required, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12


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


# ---------------------------------------------------------------- the same shapes as validated dicts (bulk sync)
#
# A sync validates every page of 100 purchase orders (~2,400 nested objects). Building model instances for them
# costs ~11 ms a page; the same validation into plain dicts keyed by the wire names costs ~1 ms. These TypedDicts
# mirror the models above field for field (same wire names, same types, unknown fields kept) and are checked
# against them by tests/amazon/test_wire_dicts.py, so a page is validated exactly once and its rows are built
# straight from the validated dicts.

_WIRE_DICT = ConfigDict(extra="allow")


@with_config(_WIRE_DICT)
class MoneyData(TypedDict, total=False):
    currencyCode: str | None
    amount: Decimal | None
    unitOfMeasure: str | None


@with_config(_WIRE_DICT)
class ItemQuantityData(TypedDict, total=False):
    amount: int | None
    unitOfMeasure: str | None
    unitSize: int | None


@with_config(_WIRE_DICT)
class AddressData(TypedDict, total=False):
    name: str | None
    addressLine1: str | None
    addressLine2: str | None
    addressLine3: str | None
    city: str | None
    county: str | None
    district: str | None
    stateOrRegion: str | None
    postalCode: str | None
    countryCode: str | None
    phone: str | None


@with_config(_WIRE_DICT)
class TaxRegistrationDetailsData(TypedDict, total=False):
    taxRegistrationType: str | None
    taxRegistrationNumber: str | None


@with_config(_WIRE_DICT)
class PartyIdentificationData(TypedDict, total=False):
    partyId: Required[str]
    address: AddressData | None
    taxInfo: TaxRegistrationDetailsData | None


@with_config(_WIRE_DICT)
class PaginationData(TypedDict, total=False):
    nextToken: str | None


@with_config(_WIRE_DICT)
class ApiErrorItemData(TypedDict, total=False):
    code: Required[str]
    message: Required[str]
    details: str | None


@with_config(_WIRE_DICT)
class ImportDetailsData(TypedDict, total=False):
    methodOfPayment: str | None
    internationalCommercialTerms: str | None
    portOfDelivery: str | None
    importContainers: str | None
    shippingInstructions: str | None


@with_config(_WIRE_DICT)
class OrderItemData(TypedDict, total=False):
    itemSequenceNumber: Required[str]
    amazonProductIdentifier: str | None
    vendorProductIdentifier: str | None
    orderedQuantity: ItemQuantityData | None
    isBackOrderAllowed: bool | None
    netCost: MoneyData | None
    listPrice: MoneyData | None


@with_config(_WIRE_DICT)
class OrderDetailsData(TypedDict, total=False):
    purchaseOrderDate: datetime | None
    purchaseOrderChangedDate: datetime | None
    purchaseOrderStateChangedDate: datetime | None
    purchaseOrderType: str | None
    importDetails: ImportDetailsData | None
    dealCode: str | None
    paymentMethod: str | None
    buyingParty: PartyIdentificationData | None
    sellingParty: PartyIdentificationData | None
    shipToParty: PartyIdentificationData | None
    billToParty: PartyIdentificationData | None
    shipWindow: str | None
    deliveryWindow: str | None
    items: list[OrderItemData]


@with_config(_WIRE_DICT)
class PurchaseOrderData(TypedDict, total=False):
    purchaseOrderNumber: Required[str]
    purchaseOrderState: Required[str]
    orderDetails: OrderDetailsData | None


@with_config(_WIRE_DICT)
class PurchaseOrderListData(TypedDict, total=False):
    pagination: PaginationData | None
    orders: list[PurchaseOrderData]


@with_config(_WIRE_DICT)
class GetPurchaseOrdersResponseData(TypedDict, total=False):
    payload: PurchaseOrderListData | None
    errors: list[ApiErrorItemData] | None


@with_config(_WIRE_DICT)
class OrderedQuantityDetailsData(TypedDict, total=False):
    updatedDate: datetime | None
    orderedQuantity: ItemQuantityData | None
    cancelledQuantity: ItemQuantityData | None


@with_config(_WIRE_DICT)
class ItemOrderedQuantityData(TypedDict, total=False):
    orderedQuantity: ItemQuantityData | None
    orderedQuantityDetails: list[OrderedQuantityDetailsData] | None


@with_config(_WIRE_DICT)
class AcknowledgementStatusDetailsData(TypedDict, total=False):
    acknowledgementDate: datetime | None
    acceptedQuantity: ItemQuantityData | None
    rejectedQuantity: ItemQuantityData | None


@with_config(_WIRE_DICT)
class ItemAcknowledgementStatusData(TypedDict, total=False):
    confirmationStatus: str | None
    acceptedQuantity: ItemQuantityData | None
    rejectedQuantity: ItemQuantityData | None
    acknowledgementStatusDetails: list[AcknowledgementStatusDetailsData] | None


@with_config(_WIRE_DICT)
class ItemReceivingStatusData(TypedDict, total=False):
    receiveStatus: str | None
    receivedQuantity: ItemQuantityData | None
    lastReceiveDate: datetime | None


@with_config(_WIRE_DICT)
class PurchaseOrderItemStatusData(TypedDict, total=False):
    itemSequenceNumber: Required[str]
    buyerProductIdentifier: str | None
    vendorProductIdentifier: str | None
    netCost: MoneyData | None
    listPrice: MoneyData | None
    orderedQuantity: ItemOrderedQuantityData | None
    acknowledgementStatus: ItemAcknowledgementStatusData | None
    receivingStatus: ItemReceivingStatusData | None


@with_config(_WIRE_DICT)
class PurchaseOrderStatusData(TypedDict, total=False):
    purchaseOrderNumber: Required[str]
    purchaseOrderStatus: str | None
    purchaseOrderDate: datetime | None
    lastUpdatedDate: datetime | None
    sellingParty: PartyIdentificationData | None
    shipToParty: PartyIdentificationData | None
    itemStatus: list[PurchaseOrderItemStatusData]


@with_config(_WIRE_DICT)
class PurchaseOrderStatusListData(TypedDict, total=False):
    pagination: PaginationData | None
    ordersStatus: list[PurchaseOrderStatusData]


@with_config(_WIRE_DICT)
class GetPurchaseOrdersStatusResponseData(TypedDict, total=False):
    payload: PurchaseOrderStatusListData | None
    errors: list[ApiErrorItemData] | None


@with_config(_WIRE_DICT)
class ShipmentData(TypedDict, total=False):
    vendorShipmentIdentifier: Required[str]
    transactionType: str | None
    buyerReferenceNumber: str | None
    transactionDate: datetime | None
    currentShipmentStatus: str | None
    currentshipmentStatusDate: datetime | None
    shipmentStatusDetails: list[dict[str, Any]] | None
    shipmentCreateDate: datetime | None
    shipmentConfirmDate: datetime | None
    packageLabelCreateDate: datetime | None
    shipmentFreightTerm: str | None
    sellingParty: PartyIdentificationData | None
    shipFromParty: PartyIdentificationData | None
    shipToParty: PartyIdentificationData | None
    shipmentMeasurements: dict[str, Any] | None
    collectFreightPickupDetails: dict[str, Any] | None
    purchaseOrders: list[dict[str, Any]] | None
    importDetails: dict[str, Any] | None
    containers: list[dict[str, Any]] | None
    transportationDetails: dict[str, Any] | None


@with_config(_WIRE_DICT)
class ShipmentDetailsData(TypedDict, total=False):
    pagination: PaginationData | None
    shipments: list[ShipmentData]


@with_config(_WIRE_DICT)
class GetShipmentDetailsResponseData(TypedDict, total=False):
    payload: ShipmentDetailsData | None
    errors: list[ApiErrorItemData] | None


#: Validators built once (building one compiles its schema: milliseconds).
PURCHASE_ORDERS_PAGE: TypeAdapter[GetPurchaseOrdersResponseData] = TypeAdapter(GetPurchaseOrdersResponseData)
PURCHASE_ORDERS_STATUS_PAGE: TypeAdapter[GetPurchaseOrdersStatusResponseData] = TypeAdapter(
    GetPurchaseOrdersStatusResponseData
)
SHIPMENT_DETAILS_PAGE: TypeAdapter[GetShipmentDetailsResponseData] = TypeAdapter(GetShipmentDetailsResponseData)


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
