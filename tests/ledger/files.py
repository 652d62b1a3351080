"""Report files written by the tests: every report type in its variants (CSV/XLSX, encodings, date formats,
marketplace header spellings), with the totals each one must produce."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import openpyxl

DATE_WRITERS = {
    "yyyy-MM-dd": lambda d: d.isoformat(),
    "MMM d, yyyy": lambda d: f"{d.strftime('%b')} {d.day}, {d.year}",
    "dd-MMM-yyyy": lambda d: d.strftime("%d-%b-%Y"),
    "dd/MM/yyyy": lambda d: d.strftime("%d/%m/%Y"),
    "MM/dd/yyyy": lambda d: d.strftime("%m/%d/%Y"),
}


def us_amount(value: Decimal, symbol: str = "") -> str:
    text = f"{abs(value):,.2f}"
    return f"({symbol}{text})" if value < 0 else f"{symbol}{text}"


def eu_amount(value: Decimal) -> str:
    text = f"{abs(value):,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"-{text}" if value < 0 else text


def to_csv(rows: list[list[Any]], *, delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def to_xlsx(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --- remittance --------------------------------------------------------------------------------------

REMITTANCE_HEADERS = {
    "US": (
        [
            "Payment Number",
            "Payment Date",
            "Invoice Currency",
            "Amount in Invoice Currency",
            "Payment Currency",
            "Amount in Payment Currency",
            "Exchange Rate",
            "Payment Type",
            "Payment Status",
        ],
        [
            "Payment Number",
            "Invoice Number",
            "Invoice Date",
            "Description",
            "Invoice Amount",
            "Invoice Currency",
            "Withholding Amount",
            "Terms Discount Taken",
            "Amount Paid",
            "Remaining Amount",
        ],
    ),
    "IN": (
        [
            "Payment Number",
            "Payment Date",
            "Invoice Currency",
            "Amount in Invoice Currency",
            "Payment Currency",
            "Amount in Payment Currency",
            "Exchange Rate",
            "Payment Type",
            "Payment Status",
        ],
        [
            "Payment Number",
            "Invoice Number",
            "Invoice Date",
            "Description",
            "Invoice Amount",
            "Invoice Currency",
            "Withholding Amount",
            "Terms Discount Taken",
            "Net Amount Paid",
            "Remaining Amount",
        ],
    ),
    "JP": (
        [
            "支払番号",
            "支払日",
            "請求書通貨",
            "請求書通貨での金額",
            "支払通貨",
            "支払通貨での金額",
            "為替レート",
            "支払タイプ",
            "支払ステータス",
        ],
        [
            "支払番号",
            "請求書番号",
            "請求書日付",
            "説明",
            "請求金額",
            "請求書通貨",
            "源泉徴収額",
            "支払条件割引",
            "支払金額",
            "残額",
        ],
    ),
    "DE": (
        [
            "Zahlungsnummer",
            "Zahlungsdatum",
            "Rechnungswährung",
            "Amount in Invoice Currency",
            "Payment Currency",
            "Amount in Payment Currency",
            "Exchange Rate",
            "Payment Type",
            "Payment Status",
        ],
        [
            "Zahlungsnummer",
            "Rechnungsnummer",
            "Rechnungsdatum",
            "Beschreibung",
            "Rechnungsbetrag",
            "Rechnungswährung",
            "Withholding Amount",
            "Terms Discount Taken",
            "Gezahlter Betrag",
            "Remaining Amount",
        ],
    ),
}


@dataclass
class Remittance:
    rows: list[list[Any]]
    invoices_total: Decimal  # sum of Invoice Amount of the plain invoice lines
    paid_total: Decimal  # sum of Amount Paid of the plain invoice lines
    discount_total: Decimal
    deductions_total: Decimal  # signed sum of the deduction lines (negative) and reversals (positive)
    payment_total: Decimal  # the payments section's amount = paid - discount... as Amazon prints it
    lines: int


def remittance(
    *,
    payment: str = "P1001",
    invoices: int = 6,
    start: int = 1000,
    day: date = date(2026, 1, 13),
    date_format: str = "MMM d, yyyy",
    currency: str = "USD",
    headers: str = "US",
    eu_numbers: bool = False,
    symbol: str = "",
    with_payments_section: bool = True,
) -> Remittance:
    """A payment of ``invoices`` invoices, one shortage claim and its reversal, a price claim, a chargeback,
    co-op, a provision and its reversal, price protection and a return."""
    fmt = DATE_WRITERS[date_format]
    money = eu_amount if eu_numbers else (lambda v: us_amount(v, symbol))
    pay_header, line_header = REMITTANCE_HEADERS[headers]
    lines: list[list[Any]] = []
    invoiced = paid = discounts = Decimal(0)
    for i in range(invoices):
        amount = Decimal(1000 + 137 * i) + Decimal("0.45")
        discount = (amount * Decimal("0.02")).quantize(Decimal("0.01"))
        invoiced += amount
        discounts += discount
        paid += amount - discount
        lines.append(
            [
                payment,
                f"{start + i}",
                fmt(day.replace(day=1 + i % 12)),
                "",
                money(amount),
                currency,
                money(Decimal(0)),
                money(discount),
                money(amount - discount),
                money(Decimal(0)),
            ]
        )
    deductions = [
        (f"{start}SC", "Shortage claim", Decimal("-150.25")),
        (f"{start}SCR", "Shortage claim reversal", Decimal("150.25")),
        (f"{start + 1}PC", "Price variance", Decimal("-40.10")),
        ("12345678VCBSINV", "Chargeback", Decimal("-75.00")),
        ("ABCD-12345678", "COOP accrual", Decimal("-300.00")),
        ("PROV-2026-01", "PROVISION FOR RECEIVABLES", Decimal("-500.00")),
        ("PROV-2026-01-R", "PROVISION FOR RECEIVABLES reversal", Decimal("500.00")),
        ("IPAPUS-55", "Price protection", Decimal("-12.34")),
        ("ReturnID_987654", "Product returns", Decimal("-88.80")),
    ]
    deducted = Decimal(0)
    for doc, desc, value in deductions:
        deducted += value
        lines.append(
            [
                payment,
                doc,
                fmt(day),
                desc,
                money(value),
                currency,
                money(Decimal(0)),
                money(Decimal(0)),
                money(value),
                money(Decimal(0)),
            ]
        )
    net = paid + deducted
    rows: list[list[Any]] = []
    if with_payments_section:
        rows += [pay_header, [payment, fmt(day), currency, money(net), currency, money(net), "1", "ACH", "Paid"], []]
    rows += [line_header, *lines]
    return Remittance(rows, invoiced, paid, discounts, deducted, net, len(lines))


# --- the other reports -------------------------------------------------------------------------------


def chargebacks(
    *, count: int = 5, date_format: str = "dd-MMM-yyyy", uk: bool = False, symbol: str = "$"
) -> tuple[list[list[Any]], Decimal]:
    fmt = DATE_WRITERS[date_format]
    header = [
        "Issue ID",
        "Financial charge",
        "Quantity",
        "Vendor code",
        "Issue type",
        "Creation date",
        "Dispute By",
        "Charge Invoice #",
        "Status",
        "Purchase order #",
        "Sub-type of the non-compliance",
        "ASIN",
        "Fulfilment centre" if uk else "Fulfillment center",
        "Notes",
    ]
    rows: list[list[Any]] = [header]
    total = Decimal(0)
    for i in range(count):
        charge = Decimal("25.50") * (i + 1)
        total += charge
        rows.append(
            [
                f"ISSUE-{i}",
                us_amount(charge, symbol),
                str(i + 1),
                "ACME1",
                "ASN accuracy",
                fmt(date(2026, 2, 3 + i)),
                fmt(date(2026, 3, 5 + i)),
                f"{9000 + i}VCBSINV",
                "Open",
                f"PO{i:05d}",
                "Missing ASN",
                f"B0{i:08d}",
                "PHX3",
                "kept",
            ]
        )
    return rows, total


def payables(*, date_format: str = "MM/dd/yyyy") -> tuple[list[list[Any]], Decimal]:
    fmt = DATE_WRITERS[date_format]
    rows: list[list[Any]] = [
        ["Your payables – ready for deduction"],
        [],
        ["Vendor code", "Transaction number", "Transaction date", "Type", "Invoice amount", "Deducted", "Balance"],
        ["ACME1", "2001SC", fmt(date(2026, 1, 20)), "Shortage claim", "1,000.00", "0.00", "1,000.00"],
        ["ACME1", "2002PC", fmt(date(2026, 1, 21)), "Price claim", "250.00", "0.00", "250.00"],
        ["ACME1", "777VCBSINV", fmt(date(2026, 1, 22)), "Chargeback", "35.00", "0.00", "35.00"],
    ]
    return rows, Decimal("-1285.00")


def coop(*, lines: int = 4) -> tuple[list[list[Any]], Decimal]:
    header = [
        "Receive Date",
        "Return Date",
        "Invoice Day",
        "Transaction Type",
        "Quantity",
        "Net Receipts",
        "List Price",
        "Rebate In Agreement Currency",
        "Agreement Currency",
        "Purchase Order",
        "ASIN",
        "UPC",
        "EAN",
        "Title",
        "Old Cost",
        "New Cost",
        "Cost Variance",
        "Invoice",
    ]
    rows: list[list[Any]] = [header]
    total = Decimal(0)
    for i in range(lines):
        rebate = Decimal("12.30") + i
        total += rebate
        rows.append(
            [
                "2026-01-05",
                "",
                "2026-01-31",
                "Receive",
                "10",
                "123.00",
                "19.99",
                str(rebate),
                "USD",
                f"PO{i}",
                f"B0{i:08d}",
                "",
                "",
                "Widget",
                "",
                "",
                "",
                "ABCD-12345678",
            ]
        )
    return rows, -total


def returns() -> tuple[list[list[Any]], Decimal]:
    rows: list[list[Any]] = [
        [
            "Request ID",
            "Vendor code",
            "Request type",
            "Status",
            "Requested quantity",
            "Approved quantity",
            "Requested refund",
            "Approved refund",
            "Currency",
            "Warehouse",
            "Authorization ID",
        ],
        ["R-1", "ACME1", "Overstock", "Approved", "10", "8", "100.00", "80.00", "USD", "PHX3", "RMA1"],
        ["R-2", "ACME1", "Damaged", "Approved", "2", "2", "30.00", "30.00", "USD", "PHX3", "RMA2"],
    ]
    return rows, Decimal("-110.00")


def erp_invoices(numbers: list[str], *, store_code: str | None = None) -> tuple[list[list[Any]], Decimal]:
    header = [
        "invoice_number",
        "invoice_date",
        "due_date",
        "po_number",
        "amount",
        "currency",
        "store_code" if store_code else "vendor_code",
    ]
    rows: list[list[Any]] = [header]
    total = Decimal(0)
    for i, number in enumerate(numbers):
        amount = Decimal("500.10") + i
        total += amount
        rows.append([number, "2026-01-02", "2026-03-02", f"PO{i:05d}", str(amount), "USD", store_code or "ACME1"])
    return rows, total


def zip_bomb() -> bytes:
    """A valid-looking XLSX whose sheet unpacks to far more than it weighs."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"<row>" + b"0" * 50_000_000 + b"</row>")
    return out.getvalue()
