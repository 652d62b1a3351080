"""The SP-API simulator ASGI application."""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import FaultConfig, SimulatorConfig
from .data import (
    MARKETPLACES,
    DataSet,
    PurchaseOrder,
    item_states,
    order_json,
    rfc3339,
    shipment_json,
    status_json,
)
from .faults import Fault, FaultInjector
from .params import (
    ApiError,
    Query,
    bad_request,
    checked_range,
    decode_token,
    encode_token,
    error_body,
    not_found,
    parse_datetime,
    parse_decimal,
)
from .ratelimit import RateLimiter
from .reports import (
    OPTION_DEFAULTS,
    REPORT_OPTIONS,
    Report,
    build_document,
    compress_document,
    utc_today,
)
from .sandbox import SandboxCatalog
from .specs import find_operation

Reply = tuple[int, Any]
Handler = Callable[[Request], Awaitable[Reply]]

UNAUTHORIZED_MESSAGE = "Access to requested resource is denied."
ORDER_FILTERS = (
    "createdAfter",
    "createdBefore",
    "changedAfter",
    "changedBefore",
    "poItemState",
    "isPOChanged",
    "purchaseOrderState",
    "orderingVendorCode",
    "sortOrder",
)
STATUS_FILTERS = (
    "createdAfter",
    "createdBefore",
    "updatedAfter",
    "updatedBefore",
    "purchaseOrderNumber",
    "purchaseOrderStatus",
    "itemConfirmationStatus",
    "itemReceiveStatus",
    "orderingVendorCode",
    "shipToPartyId",
    "sortOrder",
)
# GetShipmentDetails date filters: parameter prefix -> shipment attribute
SHIPMENT_DATES = {
    "created": "created",
    "shipmentConfirmed": "confirmed",
    "packageLabelCreated": "label_created",
    "shipped": "shipped",
    "estimatedDelivery": "estimated_delivery",
    "shipmentDelivery": "delivered",
    "requestedPickUp": "requested_pickup",
    "scheduledPickUp": "scheduled_pickup",
}
SHIPMENT_FILTERS = (
    *(f"{prefix}{side}" for prefix in SHIPMENT_DATES for side in ("After", "Before")),
    "currentShipmentStatus",
    "vendorShipmentIdentifier",
    "buyerReferenceNumber",
    "buyerWarehouseCode",
    "sellerWarehouseCode",
    "sortOrder",
)


@dataclass(slots=True)
class Transaction:
    transaction_id: str
    created: float
    errors: list[dict[str, str]]
    polls: int = 0


@dataclass(slots=True)
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "throttled": self.throttled,
            "faults": dict(sorted(self.faults.items())),
            "tokensIssued": self.tokens_issued,
        }


def _same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the configured one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


class Simulator:
    """State of one simulated selling partner: data, tokens, buckets, transactions and reports."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.started = clock()
        self.tokens: dict[str, float] = {}
        self.sandbox = SandboxCatalog() if config.sandbox else None
        self.reset()

    def reset(self) -> None:
        """Back to the initial state; issued access tokens stay valid."""
        self.data = DataSet(self.config)
        self.limiter = RateLimiter(self.config.rate_limit, self.clock)
        self.faults = FaultInjector(self.config.faults, self.config.seed)
        self.stats = Stats()
        self.ids = random.Random(f"ids:{self.config.seed}")
        self.transactions: dict[str, Transaction] = {}
        self.reports: dict[str, Report] = {}
        self.documents: dict[str, bytes] = {}
        self.advances = 0
        self.last_change: datetime | None = None

    def now(self) -> datetime:
        """Wall-clock UTC, but never earlier than the anchor (the data's "now") plus elapsed time."""
        simulated = self.config.anchor + timedelta(seconds=self.clock() - self.started)
        return max(datetime.now(UTC), simulated)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    # ----------------------------------------------------------------- dispatch

    async def call(self, operation: str, request: Request, handler: Handler) -> Response:
        self.stats.requests[operation] += 1
        rate, _burst = self.config.rate_limit(operation)
        limit_header = {"x-amzn-RateLimit-Limit": str(float(rate))}
        denied = self._token_problem(request.headers.get("x-amz-access-token"))
        if denied is not None:
            return _json_response(403, error_body("Unauthorized", UNAUTHORIZED_MESSAGE, denied))
        if self.config.rate_limits_enabled and not self.limiter.try_acquire(operation):
            self.stats.throttled += 1
            return _quota_exceeded()
        fault = self.faults.draw()
        if fault is not None:
            self.stats.faults[fault.value] += 1
        if fault is Fault.THROTTLE:
            self.stats.throttled += 1
            return _quota_exceeded()
        if fault is Fault.SERVER_ERROR:
            if self.faults.last_server_status == 500:
                body = error_body("InternalFailure", "We encountered an internal error. Please try again.")
                return _json_response(500, body)
            return _json_response(503, error_body("ServiceUnavailable", "Service temporarily unavailable."))
        if fault is Fault.EXPIRED_TOKEN:
            expired = error_body("Unauthorized", UNAUTHORIZED_MESSAGE, "The access token you provided has expired.")
            return _json_response(403, expired)
        if fault is Fault.TIMEOUT:
            await asyncio.sleep(self.faults.config.timeout_seconds)
        try:
            status, body = await (self._sandbox(operation, request) if self.sandbox else handler(request))
        except ApiError as exc:
            status, body = exc.status, exc.body
        response = _json_response(status, body, limit_header)
        if fault is Fault.TRUNCATED_JSON:
            content = bytes(response.body)
            return Response(content[: len(content) // 2], 200, media_type="application/json", headers=limit_header)
        return response

    def _token_problem(self, token: str | None) -> str | None:
        if not token:
            return "The request is missing the x-amz-access-token header."
        expiry = self.tokens.get(token)
        if expiry is None:
            return "The access token you provided is revoked, malformed or invalid."
        if self.clock() >= expiry:
            return "The access token you provided has expired."
        return None

    async def _sandbox(self, operation: str, request: Request) -> Reply:
        assert self.sandbox is not None
        _path, _method, op = find_operation(operation)
        parameters: dict[str, Any] = dict(request.path_params)
        for spec in op.get("parameters", []):
            if spec["in"] == "query" and spec["name"] in request.query_params:
                parameters[spec["name"]] = request.query_params[spec["name"]]
            if spec["in"] == "body":
                parameters["body"] = await _json_body(request)
        example = self.sandbox.match(operation, parameters)
        if example is None:
            raise bad_request("No sandbox example matches this request.")
        return example.status, example.response

    # ------------------------------------------------------------------ LWA

    async def token(self, request: Request) -> Response:
        form = {key: values[-1] for key, values in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return _json_response(
                400,
                {"error": "unsupported_grant_type", "error_description": "The grant type is not supported."},
            )
        client_ok = _same(form.get("client_id"), self.config.client_id)
        if not (_same(form.get("client_secret"), self.config.client_secret) and client_ok):
            return _json_response(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if not _same(form.get("refresh_token"), self.config.refresh_token):
            description = "The request has an invalid grant parameter : refresh_token"
            return _json_response(400, {"error": "invalid_grant", "error_description": description})
        token = "Atza|" + secrets.token_urlsafe(48)
        self.tokens[token] = self.clock() + self.config.access_token_ttl
        self.stats.tokens_issued += 1
        return _json_response(
            200,
            {
                "access_token": token,
                "refresh_token": self.config.refresh_token,
                "token_type": "bearer",
                "expires_in": self.config.access_token_ttl,
            },
        )

    # --------------------------------------------------------- vendor orders

    def _filters(self, query: Query, names: tuple[str, ...], kind: str) -> tuple[dict[str, str], Any]:
        """Filters of the query, or those carried by the nextToken (other filters are then ignored)."""
        token = query.text("nextToken")
        if token is not None:
            return decode_token(token, kind)
        return {name: value for name in names if (value := query.text(name)) is not None}, None

    def _page(
        self, kind: str, rows: list[PurchaseOrder], filters: dict[str, str], cursor: Any, limit: int
    ) -> tuple[list[PurchaseOrder], dict[str, Any]]:
        """Keyset pagination over rows sorted ascending by (purchaseOrderDate, number)."""
        descending = filters.get("sortOrder") == "DESC"
        if descending:
            rows = [row for row in reversed(rows) if cursor is None or row.key < cursor]
        elif cursor is not None:
            rows = [row for row in rows if row.key > cursor]
        page = rows[:limit]
        pagination: dict[str, Any] = {}
        if len(rows) > limit:
            pagination["pagination"] = {"nextToken": encode_token(kind, filters, page[-1].key)}
        return page, pagination

    async def get_purchase_orders(self, request: Request) -> Reply:
        query = Query(request.query_params)
        limit = query.integer("limit", 1, 100, 100)
        include_details = query.boolean("includeDetails", True)
        filters, cursor = self._filters(query, ORDER_FILTERS, "orders")
        given = Query(filters)
        given.choice("sortOrder", ("ASC", "DESC"))
        item_state = given.choice("poItemState", ("Cancelled",))
        changed_only = given.boolean("isPOChanged", False)
        state = given.choice("purchaseOrderState", ("New", "Acknowledged", "Closed"))
        vendor = given.text("orderingVendorCode")
        now = self.now()
        created_after, created_before = given.datetime("createdAfter"), given.datetime("createdBefore")
        changed_after, changed_before = given.datetime("changedAfter"), given.datetime("changedBefore")
        has_changed = changed_after is not None or changed_before is not None
        rows = self.data.orders
        if created_after is not None or created_before is not None or not has_changed:
            low, high = checked_range(created_after, created_before, ("createdAfter", "createdBefore"), now)
            rows = self.data.range_slice(low, high)
        if has_changed:
            low, high = checked_range(changed_after, changed_before, ("changedAfter", "changedBefore"), now)
            rows = [po for po in rows if low <= po.last_changed < high]
        rows = [
            po
            for po in rows
            if (item_state is None or po.has_cancelled_items)
            and (not changed_only or po.changed is not None)
            and (state is None or po.state == state)
            and (vendor is None or po.vendor_code == vendor)
        ]
        page, pagination = self._page("orders", rows, filters, cursor, limit)
        orders = [order_json(po, include_details) for po in page]
        return 200, {"payload": {**pagination, "orders": orders}}

    async def get_purchase_order(self, request: Request) -> Reply:
        number = request.path_params["purchaseOrderNumber"]
        po = self.data.by_number.get(number)
        if po is None:
            raise not_found(f"Purchase order {number} was not found.")
        return 200, {"payload": order_json(po)}

    async def get_purchase_orders_status(self, request: Request) -> Reply:
        query = Query(request.query_params)
        limit = query.integer("limit", 1, 100, 100)
        filters, cursor = self._filters(query, STATUS_FILTERS, "status")
        given = Query(filters)
        given.choice("sortOrder", ("ASC", "DESC"))
        number = given.text("purchaseOrderNumber")
        po_status = given.choice("purchaseOrderStatus", ("OPEN", "CLOSED"))
        confirmation = given.choice(
            "itemConfirmationStatus", ("ACCEPTED", "PARTIALLY_ACCEPTED", "REJECTED", "UNCONFIRMED")
        )
        receive = given.choice("itemReceiveStatus", ("NOT_RECEIVED", "PARTIALLY_RECEIVED", "RECEIVED"))
        vendor, ship_to = given.text("orderingVendorCode"), given.text("shipToPartyId")
        now = self.now()
        created_after, created_before = given.datetime("createdAfter"), given.datetime("createdBefore")
        updated_after, updated_before = given.datetime("updatedAfter"), given.datetime("updatedBefore")
        has_updated = updated_after is not None or updated_before is not None
        if number is not None:
            rows = [po] if (po := self.data.by_number.get(number)) is not None else []
        else:
            rows = self.data.orders
        if created_after is not None or created_before is not None or (number is None and not has_updated):
            low, high = checked_range(created_after, created_before, ("createdAfter", "createdBefore"), now)
            rows = [po for po in rows if low <= po.order_date < high]
        if has_updated:
            low, high = checked_range(updated_after, updated_before, ("updatedAfter", "updatedBefore"), now)
            rows = [po for po in rows if low <= po.last_changed < high]

        def matches(po: PurchaseOrder) -> bool:
            states = [item_states(po, item) for item in po.items]
            return (
                (po_status is None or ("CLOSED" if po.state == "Closed" else "OPEN") == po_status)
                and (confirmation is None or any(state[0] == confirmation for state in states))
                and (receive is None or any(state[1] == receive for state in states))
                and (vendor is None or po.vendor_code == vendor)
                and (ship_to is None or po.ship_to == ship_to)
            )

        page, pagination = self._page("status", [po for po in rows if matches(po)], filters, cursor, limit)
        return 200, {"payload": {**pagination, "ordersStatus": [status_json(po) for po in page]}}

    async def submit_acknowledgement(self, request: Request) -> Reply:
        body = await _json_body(request)
        acknowledgements = body.get("acknowledgements") if isinstance(body, dict) else None
        if not isinstance(acknowledgements, list) or not acknowledgements:
            raise bad_request("acknowledgements must be a non-empty array.")
        errors: list[dict[str, str]] = []
        for index, ack in enumerate(acknowledgements):
            where = f"acknowledgements[{index}]"
            if not isinstance(ack, dict) or not isinstance(ack.get("purchaseOrderNumber"), str):
                raise bad_request(f"{where}.purchaseOrderNumber is required.")
            party = ack.get("sellingParty")
            if not isinstance(party, dict) or not isinstance(party.get("partyId"), str):
                raise bad_request(f"{where}.sellingParty.partyId is required.")
            if not isinstance(ack.get("acknowledgementDate"), str):
                raise bad_request(f"{where}.acknowledgementDate is required.")
            parse_datetime(ack["acknowledgementDate"], f"{where}.acknowledgementDate")
            items = ack.get("items")
            if not isinstance(items, list) or not items:
                raise bad_request(f"{where}.items must be a non-empty array.")
            for item in items:
                codes = item.get("itemAcknowledgements") if isinstance(item, dict) else None
                if not isinstance(codes, list) or not all(
                    isinstance(code, dict)
                    and code.get("acknowledgementCode") in ("Accepted", "Backordered", "Rejected")
                    and isinstance(code.get("acknowledgedQuantity"), dict)
                    for code in codes
                ):
                    raise bad_request(f"{where}.items[].itemAcknowledgements is invalid.")
            errors.extend(self._apply_acknowledgement(ack))
        return 202, {"payload": {"transactionId": self._new_transaction(errors)}}

    def _apply_acknowledgement(self, ack: dict[str, Any]) -> list[dict[str, str]]:
        po = self.data.by_number.get(ack["purchaseOrderNumber"])
        if po is None:
            return [_tx_error("InvalidPurchaseOrder", f"Purchase order {ack['purchaseOrderNumber']} not found.")]
        if ack["sellingParty"]["partyId"] != po.vendor_code:
            return [_tx_error("InvalidSellingParty", f"{po.number} was not ordered from this selling party.")]
        if po.state == "New":
            stamp = self.change_stamp()
            for item in po.items:
                acked = _acknowledged_quantity(ack["items"], str(item.sequence), item.product.asin, item.product.sku)
                if acked is not None:
                    item.accepted = min(item.ordered, acked)
                    item.received = min(item.received, item.accepted)
            po.state, po.acknowledged, po.state_changed = "Acknowledged", stamp, stamp
        return []

    # -------------------------------------------------------------- shipments

    async def get_shipment_details(self, request: Request) -> Reply:
        query = Query(request.query_params)
        limit = query.integer("limit", 1, 50, 50)
        filters, cursor = self._filters(query, SHIPMENT_FILTERS, "shipments")
        given = Query(filters)
        given.choice("sortOrder", ("ASC", "DESC"))
        status = given.choice(
            "currentShipmentStatus", ("Created", "TransportationRequested", "CarrierAssigned", "Shipped")
        )
        bounds = {
            attribute: (given.datetime(f"{prefix}After"), given.datetime(f"{prefix}Before"))
            for prefix, attribute in SHIPMENT_DATES.items()
        }
        exact = {
            "vendorShipmentIdentifier": given.text("vendorShipmentIdentifier"),
            "buyerReferenceNumber": given.text("buyerReferenceNumber"),
            "buyerWarehouseCode": given.text("buyerWarehouseCode"),
            "sellerWarehouseCode": given.text("sellerWarehouseCode"),
        }

        def matches(po: PurchaseOrder) -> bool:
            shipment = po.shipment
            observed = {
                "vendorShipmentIdentifier": shipment.identifier,
                "buyerReferenceNumber": shipment.buyer_reference,
                "buyerWarehouseCode": po.ship_to,
                "sellerWarehouseCode": f"{po.vendor_code}-WH1",
            }
            for attribute, (after, before) in bounds.items():
                value: datetime = getattr(shipment, attribute)
                if (after is not None and value < after) or (before is not None and value >= before):
                    return False
            return (
                po.is_shipped()
                and status in (None, "Shipped")
                and all(wanted is None or observed[name] == wanted for name, wanted in exact.items())
            )

        rows = [po for po in self.data.orders if matches(po)]
        page, pagination = self._page("shipments", rows, filters, cursor, limit)
        return 200, {"payload": {**pagination, "shipments": [shipment_json(po) for po in page]}}

    # ---------------------------------------------------- invoices/transactions

    async def submit_invoices(self, request: Request) -> Reply:
        body = await _json_body(request)
        invoices = body.get("invoices") if isinstance(body, dict) else None
        if not isinstance(invoices, list) or not invoices:
            raise bad_request("invoices must be a non-empty array.")
        errors: list[dict[str, str]] = []
        for index, invoice in enumerate(invoices):
            errors.extend(self._check_invoice(invoice, f"invoices[{index}]"))
        return 202, {"payload": {"transactionId": self._new_transaction(errors)}}

    def _check_invoice(self, invoice: Any, where: str) -> list[dict[str, str]]:
        """Raises for malformed invoices (400); returns business errors reported by the transaction."""
        if not isinstance(invoice, dict):
            raise bad_request(f"{where} must be an object.")
        if invoice.get("invoiceType") not in ("Invoice", "CreditNote"):
            raise bad_request(f"{where}.invoiceType must be one of [CreditNote, Invoice].")
        if not isinstance(invoice.get("id"), str) or not invoice["id"]:
            raise bad_request(f"{where}.id is required.")
        if not isinstance(invoice.get("date"), str):
            raise bad_request(f"{where}.date is required.")
        parse_datetime(invoice["date"], f"{where}.date")
        remit_to = invoice.get("remitToParty")
        if not isinstance(remit_to, dict) or not isinstance(remit_to.get("partyId"), str):
            raise bad_request(f"{where}.remitToParty.partyId is required.")
        total = _money(invoice.get("invoiceTotal"), f"{where}.invoiceTotal")
        items = invoice.get("items", [])
        if not isinstance(items, list):
            raise bad_request(f"{where}.items must be an array.")
        errors = []
        computed = Decimal(0)
        for position, item in enumerate(items):
            item_where = f"{where}.items[{position}]"
            if not isinstance(item, dict) or not isinstance(item.get("itemSequenceNumber"), int):
                raise bad_request(f"{item_where}.itemSequenceNumber must be an integer.")
            quantity = item.get("invoicedQuantity")
            if not isinstance(quantity, dict) or not isinstance(quantity.get("amount"), int):
                raise bad_request(f"{item_where}.invoicedQuantity.amount must be an integer.")
            computed += _money(item.get("netCost"), f"{item_where}.netCost") * quantity["amount"]
            number = item.get("purchaseOrderNumber")
            if number is not None and number not in self.data.by_number:
                errors.append(_tx_error("InvalidPurchaseOrder", f"Invoice {invoice['id']}: PO {number} not found."))
        for key, amount_key, sign in (
            ("chargeDetails", "chargeAmount", 1),
            ("allowanceDetails", "allowanceAmount", -1),
        ):
            for detail in invoice.get(key, []) or []:
                if isinstance(detail, dict):
                    computed += sign * _money(detail.get(amount_key), f"{where}.{key}[].{amount_key}")
        for tax in invoice.get("taxDetails", []) or []:
            if isinstance(tax, dict):
                computed += _money(tax.get("taxAmount"), f"{where}.taxDetails[].taxAmount")
        if items and abs(computed - total) > Decimal("0.01"):
            details = f"Invoice {invoice['id']}: invoiceTotal {total} does not match the computed total {computed}."
            errors.append(_tx_error("InvoiceTotalMismatch", details))
        return errors

    def _new_transaction(self, errors: list[dict[str, str]]) -> str:
        transaction_id = f"{self.config.anchor:%Y%m%d%H%M%S}-{self.new_id()}"
        self.transactions[transaction_id] = Transaction(transaction_id, self.clock(), errors)
        return transaction_id

    async def get_transaction(self, request: Request) -> Reply:
        transaction = self.transactions.get(request.path_params["transactionId"])
        if transaction is None:
            raise not_found("The transaction was not found.")
        transaction.polls += 1
        elapsed = self.clock() - transaction.created
        status: dict[str, Any] = {"transactionId": transaction.transaction_id}
        if transaction.polls == 1 and elapsed < self.config.transaction_delay_seconds:
            status["status"] = "Processing"
        elif transaction.errors:
            status["status"] = "Failure"
            status["errors"] = transaction.errors
        else:
            status["status"] = "Success"
        return 200, {"payload": {"transactionStatus": status}}

    # ---------------------------------------------------------------- reports

    async def create_report(self, request: Request) -> Reply:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _report_error("The request body must be a JSON object.")
        report_type = body.get("reportType")
        if report_type not in REPORT_OPTIONS:
            raise _report_error(f"Report type {report_type!r} is not supported.")
        marketplaces = body.get("marketplaceIds")
        if (
            not isinstance(marketplaces, list)
            or not 1 <= len(marketplaces) <= 25
            or not all(isinstance(value, str) for value in marketplaces)
        ):
            raise _report_error("marketplaceIds must be an array of 1 to 25 marketplace ids.")
        options = body.get("reportOptions", {})
        if not isinstance(options, dict) or not all(isinstance(value, str) for value in options.values()):
            raise _report_error("reportOptions must map option names to strings.")
        options = {**OPTION_DEFAULTS, **options}
        for name, allowed in REPORT_OPTIONS[report_type].items():
            if options.get(name) not in allowed:
                raise _report_error(f"reportOptions.{name} must be one of {', '.join(allowed)}.")
        start, end = body.get("dataStartTime"), body.get("dataEndTime")
        if not isinstance(start, str) or not isinstance(end, str):
            raise _report_error("dataStartTime and dataEndTime are required for vendor reports.")
        try:
            start_time, end_time = parse_datetime(start, "dataStartTime"), parse_datetime(end, "dataEndTime")
        except ApiError as exc:
            raise _report_error(str(exc)) from exc
        if start_time > end_time:
            raise _report_error("dataStartTime must not be later than dataEndTime.")
        report_id = str(50000000000 + len(self.reports) + 1)
        self.reports[report_id] = Report(
            report_id=report_id,
            report_type=report_type,
            options=options,
            start=start_time,
            end=end_time,
            marketplace_ids=marketplaces,
            created=self.now().replace(microsecond=0),
            document_id=f"amzn1.spdoc.1.4.na.{self.new_id()}",
        )
        return 202, {"reportId": report_id}

    async def get_report(self, request: Request) -> Reply:
        report = self.reports.get(request.path_params["reportId"])
        if report is None:
            raise ApiError(404, "NotFound", "The report was not found.", "")
        report.poll(self.now().replace(microsecond=0))
        if report.status == "DONE" and report.document_id not in self.documents:
            currency = MARKETPLACES.get(report.marketplace_ids[0], MARKETPLACES["ATVPDKIKX0DER"])[0]
            document = build_document(report, self.data, currency, utc_today())
            self.documents[report.document_id] = compress_document(document)
        return 200, report.json()

    async def get_report_document(self, request: Request) -> Reply:
        document_id = request.path_params["reportDocumentId"]
        if document_id not in self.documents:
            raise ApiError(404, "NotFound", "The report document was not found.", "")
        url = f"{str(request.base_url).rstrip('/')}/_simulator/documents/{document_id}"
        return 200, {"reportDocumentId": document_id, "url": url, "compressionAlgorithm": "GZIP"}

    # --------------------------------------------------------------- control

    def change_stamp(self) -> datetime:
        """A change time after every earlier one, so changedAfter=<previous change> finds it."""
        stamp = self.now().replace(microsecond=0)
        if self.last_change is not None and stamp <= self.last_change:
            stamp = self.last_change + timedelta(seconds=1)
        self.last_change = stamp
        return stamp

    async def advance(self, request: Request) -> Response:
        body = await request.body()
        try:
            count = json.loads(body or b"{}").get("changed_count", 1)
        except (ValueError, AttributeError):
            count = None
        if not isinstance(count, int) or count < 0:
            return _json_response(400, {"error": "changed_count must be a non-negative integer"})
        stamp = self.change_stamp()
        self.advances += 1
        changed = self.data.advance(count, stamp, self.advances)
        return _json_response(
            200,
            {
                "changedAt": rfc3339(stamp),
                "changed": [{"purchaseOrderNumber": po.number, "purchaseOrderState": po.state} for po in changed],
            },
        )

    async def put_faults(self, request: Request) -> Response:
        try:
            faults = FaultConfig.model_validate_json(await request.body())
        except ValidationError as exc:
            return _json_response(400, {"error": str(exc)})
        self.faults = FaultInjector(faults, self.config.seed)
        return _json_response(200, faults.model_dump())

    async def control_reset(self, _request: Request) -> Response:
        self.reset()
        return _json_response(200, {"status": "reset"})

    async def control_stats(self, _request: Request) -> Response:
        return _json_response(200, self.stats.json())

    async def purchase_order_numbers(self, _request: Request) -> Response:
        numbers = [po.number for po in self.data.orders]
        return _json_response(200, {"count": len(numbers), "purchaseOrderNumbers": numbers})

    async def document(self, request: Request) -> Response:
        content = self.documents.get(request.path_params["documentId"])
        if content is None:
            return _json_response(404, error_body("NotFound", "The report document was not found."))
        return Response(content, media_type="application/octet-stream")


def _quota_exceeded() -> Response:
    return _json_response(429, error_body("QuotaExceeded", "You exceeded your quota for the requested resource."))


def _report_error(details: str) -> ApiError:
    return ApiError(400, "InvalidInput", "Invalid input", details)


def _tx_error(code: str, details: str) -> dict[str, str]:
    return {"code": code, "message": "The transaction failed validation.", "details": details}


def _money(value: Any, where: str) -> Decimal:
    if not isinstance(value, dict) or not isinstance(value.get("currencyCode"), str):
        raise bad_request(f"{where} must have currencyCode and amount.")
    return parse_decimal(value.get("amount"), f"{where}.amount")


def _acknowledged_quantity(items: list[dict[str, Any]], sequence: str, asin: str, sku: str) -> int | None:
    """Accepted + backordered quantity acknowledged for one PO item, if the acknowledgement lists it."""
    for item in items:
        if (
            item.get("itemSequenceNumber") == sequence
            or item.get("amazonProductIdentifier") == asin
            or item.get("vendorProductIdentifier") == sku
        ):
            return sum(
                int(code["acknowledgedQuantity"].get("amount", 0))
                for code in item["itemAcknowledgements"]
                if code["acknowledgementCode"] != "Rejected"
            )
    return None


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise bad_request("The request body is not valid JSON.") from exc


class RequestIdMiddleware:
    """Adds the x-amzn-RequestId header to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-amzn-requestid", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_simulator_app(config: SimulatorConfig, *, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """Builds the simulator; `clock` (monotonic seconds) drives token expiry, rate limits and delays."""
    simulator = Simulator(config, clock)

    def operation(name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await simulator.call(name, request, handler)

        return endpoint

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _json_response(status, error_body("NotFound" if status == 404 else "InvalidInput", str(exc)))

    routes = [
        Route("/auth/o2/token", simulator.token, methods=["POST"]),
        Route(
            "/vendor/orders/v1/purchaseOrders",
            operation("getPurchaseOrders", simulator.get_purchase_orders),
            methods=["GET"],
        ),
        Route(
            "/vendor/orders/v1/purchaseOrders/{purchaseOrderNumber}",
            operation("getPurchaseOrder", simulator.get_purchase_order),
            methods=["GET"],
        ),
        Route(
            "/vendor/orders/v1/acknowledgements",
            operation("submitAcknowledgement", simulator.submit_acknowledgement),
            methods=["POST"],
        ),
        Route(
            "/vendor/orders/v1/purchaseOrdersStatus",
            operation("getPurchaseOrdersStatus", simulator.get_purchase_orders_status),
            methods=["GET"],
        ),
        Route(
            "/vendor/shipping/v1/shipments",
            operation("getShipmentDetails", simulator.get_shipment_details),
            methods=["GET"],
        ),
        Route(
            "/vendor/payments/v1/invoices",
            operation("submitInvoices", simulator.submit_invoices),
            methods=["POST"],
        ),
        Route(
            "/vendor/transactions/v1/transactions/{transactionId}",
            operation("getTransaction", simulator.get_transaction),
            methods=["GET"],
        ),
        Route(
            "/reports/2021-06-30/reports",
            operation("createReport", simulator.create_report),
            methods=["POST"],
        ),
        Route(
            "/reports/2021-06-30/reports/{reportId}",
            operation("getReport", simulator.get_report),
            methods=["GET"],
        ),
        Route(
            "/reports/2021-06-30/documents/{reportDocumentId}",
            operation("getReportDocument", simulator.get_report_document),
            methods=["GET"],
        ),
        Route("/_simulator/advance", simulator.advance, methods=["POST"]),
        Route("/_simulator/stats", simulator.control_stats, methods=["GET"]),
        Route("/_simulator/faults", simulator.put_faults, methods=["PUT"]),
        Route("/_simulator/reset", simulator.control_reset, methods=["POST"]),
        Route("/_simulator/purchase-orders", simulator.purchase_order_numbers, methods=["GET"]),
        Route("/_simulator/documents/{documentId}", simulator.document, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.simulator = simulator
    app.add_middleware(RequestIdMiddleware)
    return app


def banner(config: SimulatorConfig, url: str) -> str:
    """How to connect: the endpoint, its LWA token URL and the credentials it accepts."""
    faults = config.faults
    total = faults.throttle + faults.server_error + faults.timeout + faults.truncated_json + faults.expired_token
    return (
        f"SP-API simulator on {url}\n"
        f"  endpoint       {url}   (a connection's `endpoint`; ACORN_SPAPI_ALLOWED_HOSTS must list "
        f"{url.split('://', 1)[-1]})\n"
        f"  LWA token URL  {url}/auth/o2/token\n"
        f"  client_id      {config.client_id}\n"
        f"  client_secret  {config.client_secret}\n"
        f"  refresh_token  {config.refresh_token}\n"
        f"  vendor codes   {', '.join(config.vendor_codes)}; "
        f"{config.purchase_orders} purchase orders (seed {config.seed})\n"
        f"  faults         {total:.0%} of calls\n"
    )


def run_simulator(host: str, port: int, config: SimulatorConfig) -> None:
    """Serves the simulator with uvicorn until interrupted (used by `acorn-api simulator`)."""
    print(banner(config, f"http://{host}:{port}"), flush=True)
    uvicorn.run(create_simulator_app(config), host=host, port=port, log_level="info")
