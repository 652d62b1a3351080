"""Vendor analytics reports (Reports API 2021-06-30) and their documents."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .data import CENT, DataSet, Product, rfc3339

SALES_REPORT = "GET_VENDOR_SALES_REPORT"
INVENTORY_REPORT = "GET_VENDOR_INVENTORY_REPORT"

REPORT_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    SALES_REPORT: {
        "reportPeriod": ("DAY", "WEEK", "MONTH", "QUARTER", "YEAR"),
        "distributorView": ("MANUFACTURING", "SOURCING"),
        "sellingProgram": ("RETAIL", "BUSINESS", "FRESH"),
    },
    INVENTORY_REPORT: {
        "reportPeriod": ("DAY", "WEEK", "MONTH", "QUARTER", "YEAR"),
        "distributorView": ("MANUFACTURING", "SOURCING"),
        "sellingProgram": ("RETAIL", "FRESH"),
    },
}
OPTION_DEFAULTS = {"distributorView": "MANUFACTURING", "sellingProgram": "RETAIL"}
# Successive getReport polls walk through these states.
PROCESSING_STATES = ("IN_QUEUE", "IN_PROGRESS", "DONE")


@dataclass(slots=True)
class Report:
    report_id: str
    report_type: str
    options: dict[str, str]
    start: datetime
    end: datetime
    marketplace_ids: list[str]
    created: datetime
    document_id: str
    polls: int = 0
    processing_started: datetime | None = None
    processing_ended: datetime | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "reportId": self.report_id,
            "reportType": self.report_type,
            "dataStartTime": rfc3339(self.start),
            "dataEndTime": rfc3339(self.end),
            "marketplaceIds": self.marketplace_ids,
            "createdTime": rfc3339(self.created),
            "processingStatus": self.status,
        }
        if self.processing_started is not None:
            body["processingStartTime"] = rfc3339(self.processing_started)
        if self.processing_ended is not None:
            body["processingEndTime"] = rfc3339(self.processing_ended)
            body["reportDocumentId"] = self.document_id
        return body

    @property
    def status(self) -> str:
        return PROCESSING_STATES[min(self.polls, len(PROCESSING_STATES)) - 1] if self.polls else "IN_QUEUE"

    def poll(self, now: datetime) -> None:
        self.polls += 1
        if self.status != "IN_QUEUE" and self.processing_started is None:
            self.processing_started = now
        if self.status == "DONE" and self.processing_ended is None:
            self.processing_ended = now


def periods(start: date, end: date, period: str) -> list[tuple[date, date]]:
    """Calendar periods (inclusive bounds) covering start..end, clipped to the requested range."""
    result = []
    cursor = start
    while cursor <= end:
        if period == "DAY":
            last = cursor
        elif period == "WEEK":  # Amazon's vendor weeks run Sunday..Saturday
            last = cursor + timedelta(days=(5 - cursor.weekday()) % 7)
        elif period == "MONTH":
            last = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        elif period == "QUARTER":
            quarter_end_month = ((cursor.month - 1) // 3) * 3 + 3
            first_next = date(cursor.year + (quarter_end_month == 12), quarter_end_month % 12 + 1, 1)
            last = first_next - timedelta(days=1)
        else:
            last = date(cursor.year, 12, 31)
        last = min(last, end)
        result.append((cursor, last))
        cursor = last + timedelta(days=1)
    return result


def _amount(value: Decimal, currency: str) -> dict[str, Any]:
    # The report schemas declare amounts as JSON numbers; values are computed as Decimal.
    return {"amount": float(value.quantize(CENT)), "currencyCode": currency}


def _products(data: DataSet) -> list[Product]:
    return [product for code in sorted(data.catalog) for product in data.catalog[code]]


def build_document(report: Report, data: DataSet, currency: str, today: date) -> dict[str, Any]:
    """Deterministic report content: depends on the seed, report type, options and dates only."""
    products = _products(data)
    is_sales = report.report_type == SALES_REPORT
    aggregates: list[dict[str, Any]] = []
    by_asin: list[dict[str, Any]] = []
    for first, last in periods(report.start.date(), report.end.date(), report.options["reportPeriod"]):
        days = (last - first).days + 1
        rows = []
        for product in products:
            rng = random.Random(f"{data.config.seed}:{report.report_type}:{product.asin}:{first}:{last}")
            row = _sales_row(rng, product, days, currency) if is_sales else _inventory_row(rng, product, days, currency)
            row = {"startDate": first.isoformat(), "endDate": last.isoformat(), "asin": product.asin, **row}
            rows.append(row)
        by_asin.extend(rows)
        aggregates.append(_aggregate(rows, first, last, currency, is_sales))
    specification = {
        "reportType": report.report_type,
        "reportOptions": {key: report.options[key] for key in ("distributorView", "reportPeriod", "sellingProgram")},
        "lastUpdatedDate": today.isoformat(),
        "dataStartTime": report.start.date().isoformat(),
        "dataEndTime": report.end.date().isoformat(),
        "marketplaceIds": report.marketplace_ids,
    }
    if is_sales:
        return {"reportSpecification": specification, "salesAggregate": aggregates, "salesByAsin": by_asin}
    return {
        "reportSpecification": specification,
        "inventoryAggregate": aggregates,
        "inventoryByAsin": by_asin,
    }


def _sales_row(rng: random.Random, product: Product, days: int, currency: str) -> dict[str, Any]:
    shipped = sum(rng.randint(0, 12) for _ in range(min(days, 31))) * max(1, days // 31)
    ordered = shipped + rng.randint(0, 5)
    returns = rng.randint(0, max(0, shipped // 20))
    return {
        "customerReturns": returns,
        "orderedRevenue": _amount(product.list_price * ordered, currency),
        "orderedUnits": ordered,
        "shippedCogs": _amount(product.net_cost * shipped, currency),
        "shippedRevenue": _amount(product.list_price * shipped, currency),
        "shippedUnits": shipped,
    }


def _inventory_row(rng: random.Random, product: Product, days: int, currency: str) -> dict[str, Any]:
    received = rng.randint(0, 30 * days)
    on_hand = rng.randint(0, 400)
    unsellable = rng.randint(0, 10)
    aged = rng.randint(0, on_hand)
    return {
        "vendorConfirmationRate": round(rng.uniform(0.7, 1.0), 4),
        "netReceivedInventoryCost": _amount(product.net_cost * received, currency),
        "netReceivedInventoryUnits": received,
        "openPurchaseOrderUnits": rng.randint(0, 300),
        "averageVendorLeadTimeDays": round(rng.uniform(3, 20), 1),
        "sellThroughRate": round(rng.uniform(0, 1), 4),
        "unfilledCustomerOrderedUnits": rng.randint(0, 20),
        "sellableOnHandInventoryCost": _amount(product.net_cost * on_hand, currency),
        "sellableOnHandInventoryUnits": on_hand,
        "unsellableOnHandInventoryCost": _amount(product.net_cost * unsellable, currency),
        "unsellableOnHandInventoryUnits": unsellable,
        "aged90PlusDaysSellableInventoryCost": _amount(product.net_cost * aged, currency),
        "aged90PlusDaysSellableInventoryUnits": aged,
        "unhealthyInventoryCost": _amount(product.net_cost * unsellable, currency),
        "unhealthyInventoryUnits": unsellable,
    }


def _aggregate(rows: list[dict[str, Any]], first: date, last: date, currency: str, is_sales: bool) -> dict[str, Any]:
    def total_units(key: str) -> int:
        return sum(int(row[key]) for row in rows)

    def total_amount(key: str) -> dict[str, Any]:
        return _amount(sum((Decimal(str(row[key]["amount"])) for row in rows), Decimal(0)), currency)

    units: tuple[str, ...]
    amounts: tuple[str, ...]
    if is_sales:
        units = ("customerReturns", "orderedUnits", "shippedUnits")
        amounts = ("orderedRevenue", "shippedCogs", "shippedRevenue")
    else:
        units = (
            "netReceivedInventoryUnits",
            "openPurchaseOrderUnits",
            "sellableOnHandInventoryUnits",
            "unsellableOnHandInventoryUnits",
            "aged90PlusDaysSellableInventoryUnits",
            "unhealthyInventoryUnits",
        )
        amounts = (
            "netReceivedInventoryCost",
            "sellableOnHandInventoryCost",
            "unsellableOnHandInventoryCost",
            "aged90PlusDaysSellableInventoryCost",
            "unhealthyInventoryCost",
        )
    aggregate: dict[str, Any] = {"startDate": first.isoformat(), "endDate": last.isoformat()}
    aggregate.update({key: total_units(key) for key in units})
    aggregate.update({key: total_amount(key) for key in amounts})
    return aggregate


def compress_document(document: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)


def utc_today() -> date:
    return datetime.now(UTC).date()
