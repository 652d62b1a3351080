"""Deterministic generator of a vendor's purchase orders, acknowledgements, receipts and shipments.

Everything is drawn from `random.Random(seed)` in a fixed order, so the same configuration always
yields the same data. Wire-shape builders (`order_json`, `status_json`, `shipment_json`) follow the
definitions of vendorOrders.json and vendorShipments.json.
"""

from __future__ import annotations

import random
import string
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .config import SimulatorConfig

CENT = Decimal("0.01")

# marketplace id -> (currency, country, fulfillment centres)
MARKETPLACES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ATVPDKIKX0DER": ("USD", "US", ("ABE2", "PHX6", "ONT8", "MDW2", "BFI4", "TPA1", "CLT2", "SDF8")),
    "A2EUQ1WTGCTBG2": ("CAD", "CA", ("YYZ4", "YVR2", "YYC1")),
    "A1AM78C64UM0Y8": ("MXN", "MX", ("MEX1", "GDL1")),
    "A1F83G8C2ARO7P": ("GBP", "GB", ("LTN1", "MAN1", "BHX4", "EDI4")),
    "A1PA6795UKMFR9": ("EUR", "DE", ("FRA1", "MUC3", "DTM2", "LEJ1")),
    "A13V1IB3VIYZZH": ("EUR", "FR", ("ORY1", "LYS1", "MRS1")),
    "APJ6JRA9NG5V4": ("EUR", "IT", ("MXP5", "FCO1")),
    "A1RKKUPIHCS9HS": ("EUR", "ES", ("MAD4", "BCN1")),
    "A1VC38T7YXB528": ("JPY", "JP", ("NRT1", "KIX1")),
}
DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"

CARRIERS = (("UPS Freight", "UPGF"), ("FedEx Freight", "FXFE"), ("XPO Logistics", "CNWY"), ("Estes", "EXLA"))
PO_TYPES = (
    ("RegularOrder", 0.86),
    ("RushOrder", 0.06),
    ("NewProductIntroduction", 0.05),
    ("ConsignedOrder", 0.03),
)
DEAL_CODES = ("BTS", "PD", "BF", "HOLIDAY")
_PO_ALPHABET = string.ascii_uppercase + string.digits


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"currencyCode": currency, "amount": str(amount.quantize(CENT))}


@dataclass(slots=True)
class Product:
    asin: str
    sku: str
    list_price: Decimal
    net_cost: Decimal
    unit_of_measure: str
    unit_size: int


@dataclass(slots=True)
class Item:
    sequence: int
    product: Product
    ordered: int
    cancelled: bool
    accepted: int
    received: int
    backorder_allowed: bool

    @property
    def rejected(self) -> int:
        return self.ordered - self.accepted

    def confirmation_status(self) -> str:
        if self.accepted == 0:
            return "REJECTED"
        return "ACCEPTED" if self.accepted == self.ordered else "PARTIALLY_ACCEPTED"


@dataclass(slots=True)
class Shipment:
    identifier: str
    buyer_reference: str
    created: datetime
    confirmed: datetime
    label_created: datetime
    requested_pickup: datetime
    scheduled_pickup: datetime
    shipped: datetime
    estimated_delivery: datetime
    delivered: datetime
    carrier: tuple[str, str]
    bill_of_lading: str
    freight_term: str
    cartons: int
    weight_kg: Decimal


@dataclass(slots=True)
class PurchaseOrder:
    number: str
    vendor_code: str
    marketplace: str
    currency: str
    ship_to: str
    order_date: datetime
    po_type: str
    deal_code: str | None
    window_kind: str  # "shipWindow" or "deliveryWindow"
    window_start: datetime
    window_end: datetime
    items: list[Item]
    shipment: Shipment
    state: str = "New"
    state_changed: datetime = field(default_factory=lambda: datetime.min)
    changed: datetime | None = None
    acknowledged: datetime | None = None
    received: datetime | None = None

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.order_date, self.number)

    @property
    def last_changed(self) -> datetime:
        """Latest modification of any kind: used by changedAfter/changedBefore and updatedAfter/Before."""
        return max(self.state_changed, self.changed or self.order_date)

    @property
    def has_cancelled_items(self) -> bool:
        return any(item.cancelled for item in self.items)

    def window(self) -> str:
        return f"{rfc3339(self.window_start)}--{rfc3339(self.window_end)}"

    def is_shipped(self) -> bool:
        return self.state == "Closed" and any(item.accepted for item in self.items)


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    for value, weight in choices:
        roll -= weight
        if roll < 0:
            return value
    return choices[-1][0]


class DataSet:
    """All generated purchase orders, sorted by (purchaseOrderDate, purchaseOrderNumber)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        rng = random.Random(config.seed)
        self.catalog: dict[str, list[Product]] = {
            code: self._products(rng, max(20, min(400, config.purchase_orders // 25))) for code in config.vendor_codes
        }
        numbers: set[str] = set()
        orders: list[PurchaseOrder] = []
        for _ in range(config.purchase_orders):
            number = "".join(rng.choices(_PO_ALPHABET, k=8))
            while number in numbers:
                number = "".join(rng.choices(_PO_ALPHABET, k=8))
            numbers.add(number)
            orders.append(self._order(rng, number))
        orders.sort(key=lambda po: po.key)
        self.orders = orders
        self.keys = [po.key for po in orders]
        self.by_number = {po.number: po for po in orders}
        self.by_shipment = {po.shipment.identifier: po for po in orders}

    @staticmethod
    def _products(rng: random.Random, count: int) -> list[Product]:
        products = []
        for _ in range(count):
            list_price = Decimal(rng.randint(499, 49999)) / 100
            margin = Decimal(rng.randint(35, 60)) / 100
            cases = rng.random() < 0.3
            products.append(
                Product(
                    asin="B0" + "".join(rng.choices(_PO_ALPHABET, k=8)),
                    sku="".join(rng.choices(string.digits, k=13)),
                    list_price=list_price.quantize(CENT),
                    net_cost=(list_price * (1 - margin)).quantize(CENT),
                    unit_of_measure="Cases" if cases else "Eaches",
                    unit_size=rng.choice((6, 12, 24)) if cases else 1,
                )
            )
        return products

    def _order(self, rng: random.Random, number: str) -> PurchaseOrder:
        config = self.config
        anchor = config.anchor
        order_date = anchor - timedelta(seconds=rng.randint(60, config.history_days * 86400 - 60))
        vendor_code = rng.choice(config.vendor_codes)
        marketplace = rng.choice(config.marketplaces)
        currency, _country, centres = MARKETPLACES.get(marketplace, MARKETPLACES[DEFAULT_MARKETPLACE])
        window_start = (order_date + timedelta(days=rng.randint(2, 10))).replace(
            hour=7 if rng.random() < 0.5 else 0, minute=0, second=0
        )
        window_end = window_start + timedelta(days=rng.choice((5, 6, 7)))
        items = []
        for sequence, product in enumerate(rng.sample(self.catalog[vendor_code], k=rng.randint(1, 6)), start=1):
            ordered = rng.randint(1, 40) if product.unit_of_measure == "Cases" else rng.randint(1, 250)
            cancelled = rng.random() < 0.06
            acceptance = rng.random()
            if cancelled or acceptance < 0.04:
                accepted = 0
            elif acceptance < 0.14:
                accepted = max(1, ordered - rng.randint(1, max(1, ordered // 2)))
            else:
                accepted = ordered
            items.append(Item(sequence, product, ordered, cancelled, accepted, accepted, rng.random() < 0.3))
        # Short receipts: one accepted item of ~15% of the orders arrives incomplete.
        receivable = [item for item in items if item.accepted > 0]
        if receivable and rng.random() < 0.15:
            short = rng.choice(receivable)
            short.received = rng.randint(0, short.accepted - 1)
        shipment = self._shipment(rng, number, window_start)
        po = PurchaseOrder(
            number=number,
            vendor_code=vendor_code,
            marketplace=marketplace,
            currency=currency,
            ship_to=rng.choice(centres),
            order_date=order_date,
            po_type=_weighted(rng, PO_TYPES),
            deal_code=rng.choice(DEAL_CODES) if rng.random() < 0.08 else None,
            window_kind="shipWindow" if rng.random() < 0.5 else "deliveryWindow",
            window_start=window_start,
            window_end=window_end,
            items=items,
            shipment=shipment,
        )
        self._lifecycle(rng, po, anchor)
        return po

    @staticmethod
    def _shipment(rng: random.Random, number: str, window_start: datetime) -> Shipment:
        created = window_start + timedelta(hours=rng.randint(0, 48))
        confirmed = created + timedelta(hours=rng.randint(1, 12))
        shipped = confirmed + timedelta(hours=rng.randint(2, 24))
        estimated = shipped + timedelta(days=rng.randint(2, 5))
        return Shipment(
            identifier=f"{number}-1",
            buyer_reference=str(rng.randint(1000000, 9999999)),
            created=created,
            confirmed=confirmed,
            label_created=confirmed,
            requested_pickup=confirmed + timedelta(hours=1),
            scheduled_pickup=shipped,
            shipped=shipped,
            estimated_delivery=estimated,
            delivered=estimated + timedelta(hours=rng.randint(-12, 36)),
            carrier=rng.choice(CARRIERS),
            bill_of_lading=str(rng.randint(10**9, 10**10 - 1)),
            freight_term="Collect" if rng.random() < 0.7 else "Prepaid",
            cartons=rng.randint(1, 60),
            weight_kg=(Decimal(rng.randint(500, 90000)) / 100).quantize(CENT),
        )

    @staticmethod
    def _lifecycle(rng: random.Random, po: PurchaseOrder, anchor: datetime) -> None:
        """Age-dependent state: old orders are mostly closed, recent ones mostly new."""
        age_days = (anchor - po.order_date).total_seconds() / 86400
        roll = rng.random()
        if age_days > 30:
            state = "Closed" if roll < 0.88 else "Acknowledged" if roll < 0.97 else "New"
        elif age_days > 7:
            state = "Closed" if roll < 0.3 else "Acknowledged" if roll < 0.9 else "New"
        else:
            state = "Acknowledged" if roll < 0.4 else "New"
        latest = anchor - timedelta(seconds=1)
        change_roll = rng.random()
        po.state = state
        po.state_changed = po.order_date
        if state != "New":
            po.acknowledged = min(latest, po.order_date + timedelta(minutes=rng.randint(30, 2880)))
            po.state_changed = po.acknowledged
        if state == "Closed":
            received = max(po.shipment.delivered, po.acknowledged or po.order_date)
            po.received = min(latest, received + timedelta(hours=rng.randint(2, 72)))
            po.shipment.delivered = min(po.shipment.delivered, po.received)
            po.state_changed = po.received
        if po.has_cancelled_items or change_roll < 0.12:
            po.changed = min(latest, po.order_date + timedelta(minutes=rng.randint(10, 4320)))

    def range_slice(self, after: datetime | None, before: datetime | None) -> list[PurchaseOrder]:
        """Orders with after <= purchaseOrderDate < before, in ascending order."""
        low = 0 if after is None else bisect_left(self.keys, (after, ""))
        high = len(self.orders) if before is None else bisect_left(self.keys, (before, ""))
        return self.orders[low:high]

    def advance(self, count: int, now: datetime, step: int) -> list[PurchaseOrder]:
        """Moves `count` open orders one state forward (New -> Acknowledged -> Closed)."""
        rng = random.Random(f"advance:{self.config.seed}:{step}")
        candidates = [po for po in self.orders if po.state != "Closed"]
        chosen = rng.sample(candidates, k=min(count, len(candidates)))
        for po in chosen:
            if po.state == "New":
                po.state = "Acknowledged"
                po.acknowledged = now
            else:
                po.state = "Closed"
                po.received = now
            po.state_changed = now
            po.changed = now
        chosen.sort(key=lambda po: po.key)
        return chosen


def _party(party_id: str) -> dict[str, Any]:
    return {"partyId": party_id}


BILL_TO_ADDRESS = {
    "name": "Amazon.com Services LLC",
    "addressLine1": "PO Box 80683",
    "city": "Seattle",
    "stateOrRegion": "WA",
    "postalCode": "98108-0683",
    "countryCode": "US",
}


def order_json(po: PurchaseOrder, include_details: bool = True) -> dict[str, Any]:
    order: dict[str, Any] = {"purchaseOrderNumber": po.number, "purchaseOrderState": po.state}
    if not include_details:
        return order
    details: dict[str, Any] = {"purchaseOrderDate": rfc3339(po.order_date)}
    if po.changed is not None:
        details["purchaseOrderChangedDate"] = rfc3339(po.changed)
    details["purchaseOrderStateChangedDate"] = rfc3339(po.state_changed)
    details["purchaseOrderType"] = po.po_type
    if po.deal_code is not None:
        details["dealCode"] = po.deal_code
    details["paymentMethod"] = "Consignment" if po.po_type == "ConsignedOrder" else "Invoice"
    details["buyingParty"] = _party("AMAZON")
    details["sellingParty"] = _party(po.vendor_code)
    details["shipToParty"] = _party(po.ship_to)
    details["billToParty"] = {"partyId": "AMZN_BILL", "address": BILL_TO_ADDRESS}
    details[po.window_kind] = po.window()
    details["items"] = [
        {
            "itemSequenceNumber": str(item.sequence),
            "amazonProductIdentifier": item.product.asin,
            "vendorProductIdentifier": item.product.sku,
            "orderedQuantity": {
                "amount": 0 if item.cancelled else item.ordered,
                "unitOfMeasure": item.product.unit_of_measure,
                "unitSize": item.product.unit_size,
            },
            "isBackOrderAllowed": item.backorder_allowed,
            "netCost": money(item.product.net_cost, po.currency),
            "listPrice": money(item.product.list_price, po.currency),
        }
        for item in po.items
    ]
    order["orderDetails"] = details
    return order


def _quantity(amount: int, product: Product) -> dict[str, Any]:
    return {"amount": amount, "unitOfMeasure": product.unit_of_measure, "unitSize": product.unit_size}


def item_states(po: PurchaseOrder, item: Item) -> tuple[str, str]:
    """(confirmationStatus, receiveStatus) of an item given the order's current state."""
    confirmation = "UNCONFIRMED" if po.acknowledged is None else item.confirmation_status()
    received = item.received if po.received is not None else 0
    if received == 0:
        receive = "NOT_RECEIVED"
    elif received < item.accepted:
        receive = "PARTIALLY_RECEIVED"
    else:
        receive = "RECEIVED"
    return confirmation, receive


def status_json(po: PurchaseOrder) -> dict[str, Any]:
    items = []
    for item in po.items:
        product = item.product
        confirmation, receive = item_states(po, item)
        ordered: dict[str, Any] = {"orderedQuantity": _quantity(item.ordered, product)}
        if item.cancelled:
            ordered["orderedQuantityDetails"] = [
                {
                    "updatedDate": rfc3339(po.changed or po.order_date),
                    "orderedQuantity": _quantity(item.ordered, product),
                    "cancelledQuantity": _quantity(item.ordered, product),
                }
            ]
        status: dict[str, Any] = {
            "itemSequenceNumber": str(item.sequence),
            "buyerProductIdentifier": product.asin,
            "vendorProductIdentifier": product.sku,
            "netCost": money(product.net_cost, po.currency),
            "listPrice": money(product.list_price, po.currency),
            "orderedQuantity": ordered,
        }
        acknowledgement: dict[str, Any] = {"confirmationStatus": confirmation}
        if po.acknowledged is not None:
            acknowledgement["acceptedQuantity"] = _quantity(item.accepted, product)
            acknowledgement["rejectedQuantity"] = _quantity(item.rejected, product)
            acknowledgement["acknowledgementStatusDetails"] = [
                {
                    "acknowledgementDate": rfc3339(po.acknowledged),
                    "acceptedQuantity": _quantity(item.accepted, product),
                    "rejectedQuantity": _quantity(item.rejected, product),
                }
            ]
        status["acknowledgementStatus"] = acknowledgement
        receiving: dict[str, Any] = {"receiveStatus": receive}
        if po.received is not None:
            receiving["receivedQuantity"] = _quantity(item.received, product)
            receiving["lastReceiveDate"] = rfc3339(po.received)
        status["receivingStatus"] = receiving
        items.append(status)
    return {
        "purchaseOrderNumber": po.number,
        "purchaseOrderStatus": "CLOSED" if po.state == "Closed" else "OPEN",
        "purchaseOrderDate": rfc3339(po.order_date),
        "lastUpdatedDate": rfc3339(po.last_changed),
        "sellingParty": _party(po.vendor_code),
        "shipToParty": _party(po.ship_to),
        "itemStatus": items,
    }


def shipment_json(po: PurchaseOrder) -> dict[str, Any]:
    """The ASN of a closed order (one shipment per order)."""
    shipment = po.shipment
    name, code = shipment.carrier
    status_dates = (
        ("Shipped", shipment.shipped),
        ("CarrierAssigned", shipment.scheduled_pickup - timedelta(hours=1)),
        ("TransportationRequested", shipment.confirmed),
        ("Created", shipment.created),
    )
    return {
        "vendorShipmentIdentifier": shipment.identifier,
        "transactionType": "New",
        "buyerReferenceNumber": shipment.buyer_reference,
        "transactionDate": rfc3339(shipment.confirmed),
        "currentShipmentStatus": "Shipped",
        "currentshipmentStatusDate": rfc3339(shipment.shipped),
        "shipmentStatusDetails": [
            {"shipmentStatus": status, "shipmentStatusDate": rfc3339(date)} for status, date in status_dates
        ],
        "shipmentCreateDate": rfc3339(shipment.created),
        "shipmentConfirmDate": rfc3339(shipment.confirmed),
        "packageLabelCreateDate": rfc3339(shipment.label_created),
        "shipmentFreightTerm": shipment.freight_term,
        "sellingParty": _party(po.vendor_code),
        "shipFromParty": _party(f"{po.vendor_code}-WH1"),
        "shipToParty": _party(po.ship_to),
        "shipmentMeasurements": {
            "totalCartonCount": shipment.cartons,
            "shipmentWeight": {"unitOfMeasure": "Kg", "value": str(shipment.weight_kg)},
        },
        "collectFreightPickupDetails": {
            "requestedPickUp": rfc3339(shipment.requested_pickup),
            "scheduledPickUp": rfc3339(shipment.scheduled_pickup),
            "carrierAssignmentDate": rfc3339(shipment.scheduled_pickup - timedelta(hours=1)),
        },
        "purchaseOrders": [
            {
                "purchaseOrderNumber": po.number,
                "purchaseOrderDate": rfc3339(po.order_date),
                "shipWindow": po.window(),
                "items": [
                    {
                        "itemSequenceNumber": str(item.sequence),
                        "buyerProductIdentifier": item.product.asin,
                        "vendorProductIdentifier": item.product.sku,
                        "shippedQuantity": _quantity(item.accepted, item.product),
                    }
                    for item in po.items
                    if item.accepted > 0
                ],
            }
        ],
        "transportationDetails": {
            "shipMode": "LessThanTruckLoad" if shipment.cartons > 10 else "SmallParcel",
            "transportationMode": "Road",
            "shippedDate": rfc3339(shipment.shipped),
            "estimatedDeliveryDate": rfc3339(shipment.estimated_delivery),
            "shipmentDeliveryDate": rfc3339(shipment.delivered),
            "carrierDetails": {
                "name": name,
                "code": code,
                "shipmentReferenceNumber": shipment.bill_of_lading,
            },
            "billOfLadingNumber": shipment.bill_of_lading,
        },
    }
