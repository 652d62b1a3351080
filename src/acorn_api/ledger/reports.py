"""Report types: their columns (by header name, with aliases), and how a row becomes ledger records.

A report is read by header name, never by position. Each field has aliases because Vendor Central
spells columns differently per marketplace (US "Fulfillment center", UK/IN "Fulfilment centre", JP and DE
translations); a user mapping (``/v1/import-mappings``) adds the account's own names on top. A remittance
has two sections (payments, then invoice lines), each recognised by its own header row.

Every row turns into *staged records* (``STAGE_COLUMNS``): ``entry`` records become ledger entries,
``payment``/``line``/``invoice`` records become rows of ``payments``/``payment_lines``/``invoices``.
Natural keys make a record's identity independent of the file it came from, so re-importing the same or
an overlapping file adds nothing:

* ``invoice:<number>`` — the invoice itself (ERP file, remittance line, accepted submission: one entry);
* ``deduction:<document>`` — a deduction document (``12345SC``, ``…VCBSINV``, a co-op invoice, a payable):
  the same document in a remittance and in a payables report is one entry;
* ``payment:<payment>:<invoice>`` (+ ``:terms_discount``, ``:withholding``) — what a payment did to an invoice;
* ``chargeback:<issue id>``, ``return:<request id>``, ``coop:<invoice>:<line digest>#<n>``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from acorn_api.core.money import CURRENCY_CODES
from acorn_api.ledger.models import EntryType, ReportType
from acorn_api.ledger.parsing import DateDetector, ValueProblem, has_control_characters, normalise_header, parse_amount

# --- fields and aliases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    aliases: tuple[str, ...]
    required: bool = False


@dataclass(frozen=True)
class Section:
    name: str
    fields: tuple[Field, ...]

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def by_header(self, overrides: dict[str, str]) -> dict[str, str]:
        """Normalised header → field name: the aliases, then the user's mapping (which wins)."""
        table = {normalise_header(a): f.name for f in self.fields for a in (f.name, *f.aliases)}
        names = {f.name for f in self.fields}
        table.update({normalise_header(h): n for h, n in overrides.items() if n in names})
        return table


F = Field
REMITTANCE_PAYMENTS = Section(
    "payments",
    (
        F("payment_number", ("Payment Number", "Payment No", "Payment #", "支払番号", "Zahlungsnummer"), True),
        F("payment_date", ("Payment Date", "支払日", "Zahlungsdatum"), True),
        F("invoice_currency", ("Invoice Currency", "請求書通貨", "Rechnungswährung")),
        F("amount", ("Amount in Invoice Currency", "Amount", "請求書通貨での金額"), True),
        F("payment_currency", ("Payment Currency", "支払通貨")),
        F("payment_amount", ("Amount in Payment Currency", "支払通貨での金額")),
        F("exchange_rate", ("Exchange Rate", "為替レート")),
        F("payment_type", ("Payment Type", "支払タイプ")),
        F("payment_status", ("Payment Status", "支払ステータス")),
    ),
)
REMITTANCE_LINES = Section(
    "invoices",
    (
        F("payment_number", ("Payment Number", "Payment No", "Payment #", "支払番号", "Zahlungsnummer")),
        F("invoice_number", ("Invoice Number", "Invoice No", "Invoice #", "請求書番号", "Rechnungsnummer"), True),
        F("invoice_date", ("Invoice Date", "請求書日付", "Rechnungsdatum"), True),
        F("description", ("Description", "Invoice Description", "説明", "Beschreibung")),
        F("invoice_amount", ("Invoice Amount", "請求金額", "Rechnungsbetrag")),
        F("invoice_currency", ("Invoice Currency", "Currency", "請求書通貨", "Rechnungswährung")),
        F("withholding_amount", ("Withholding Amount", "Withholding", "源泉徴収額")),
        F("terms_discount", ("Terms Discount Taken", "Terms Discount", "支払条件割引")),
        F("amount_paid", ("Amount Paid", "Net Amount Paid", "Paid Amount", "支払金額", "Gezahlter Betrag"), True),
        F("remaining_amount", ("Remaining Amount", "Remaining", "残額")),
    ),
)
CHARGEBACKS = Section(
    "chargebacks",
    (
        F("issue_id", ("Issue ID", "Issue Id", "問題ID"), True),
        F("financial_charge", ("Financial charge", "Financial Charge Amount", "Charge amount", "請求額"), True),
        F("currency", ("Currency", "通貨")),
        F("quantity", ("Quantity", "数量")),
        F("vendor_code", ("Vendor code", "ベンダーコード")),
        F("issue_type", ("Issue type", "問題の種類")),
        F("creation_date", ("Creation date", "Created on", "作成日"), True),
        F("dispute_by", ("Dispute By", "Dispute by date", "異議申し立て期限")),
        F("charge_invoice", ("Charge Invoice #", "Charge Invoice", "Charge Invoice Number")),
        F("status", ("Status", "ステータス")),
        F("po_number", ("Purchase order #", "Purchase Order", "PO", "PO Number", "発注番号")),
        F("sub_type", ("Sub-type of the non-compliance", "Sub-type", "Subtype")),
        F("asin", ("ASIN",)),
        F("fulfillment_center", ("Fulfillment center", "Fulfilment centre", "Fulfilment center", "FC")),
    ),
)
PAYABLES = Section(
    "payables",
    (
        F("vendor_code", ("Vendor code", "ベンダーコード")),
        F("transaction_number", ("Transaction number", "Transaction #", "取引番号"), True),
        F("transaction_date", ("Transaction date", "取引日"), True),
        F("type", ("Type", "Transaction type", "種類"), True),
        F("invoice_amount", ("Invoice amount", "請求額"), True),
        F("currency", ("Currency", "通貨")),
        F("deducted", ("Deducted", "控除済み")),
        F("balance", ("Balance", "残高")),
    ),
)
COOP = Section(
    "coop",
    (
        F("receive_date", ("Receive Date",)),
        F("return_date", ("Return Date",)),
        F("invoice_day", ("Invoice Day", "Invoice Date"), True),
        F("transaction_type", ("Transaction Type",)),
        F("quantity", ("Quantity",)),
        F("net_receipts", ("Net Receipts",)),
        F("list_price", ("List Price",)),
        F("rebate", ("Rebate In Agreement Currency", "Rebate in agreement currency", "Rebate"), True),
        F("agreement_currency", ("Agreement Currency",)),
        F("po_number", ("Purchase Order", "PO")),
        F("asin", ("ASIN",)),
        F("upc", ("UPC",)),
        F("ean", ("EAN",)),
        F("title", ("Title",)),
        F("old_cost", ("Old Cost",)),
        F("new_cost", ("New Cost",)),
        F("cost_variance", ("Cost Variance",)),
        F("invoice", ("Invoice", "Invoice Number", "Agreement Invoice"), True),
    ),
)
RETURNS = Section(
    "returns",
    (
        F("request_id", ("Request ID", "Return ID", "Request Id"), True),
        F("vendor_code", ("Vendor code",)),
        F("request_type", ("Request type",)),
        F("status", ("Status",)),
        F("requested_quantity", ("Requested quantity",)),
        F("approved_quantity", ("Approved quantity",)),
        F("requested_refund", ("Requested refund",)),
        F("approved_refund", ("Approved refund", "Refund amount"), True),
        F("currency", ("Currency",)),
        F("warehouse", ("Warehouse",)),
        F("authorization_id", ("Authorization ID", "RMA")),
        F("request_date", ("Request date", "Creation date", "Created on", "Return date")),
    ),
)
INVOICES = Section(
    "invoices",
    (
        F("invoice_number", ("Invoice Number", "Invoice No", "Invoice #"), True),
        F("invoice_date", ("Invoice Date",), True),
        F("due_date", ("Due Date", "due_on")),
        F("po_number", ("PO Number", "Purchase Order", "Purchase order #", "po")),
        F("amount", ("Amount", "Invoice Amount", "Total"), True),
        F("currency", ("Currency",), True),
        F("vendor_code", ("Vendor Code",)),
        F("store_code", ("Store Code", "Store")),
    ),
)

INVOICE_LINES = Section(
    "lines",
    (
        F("invoice_number", ("Invoice Number", "Invoice No", "Invoice #"), True),
        F("asin", ("ASIN", "Item ASIN"), True),
        F("quantity", ("Quantity", "Qty", "Invoiced Quantity"), True),
        F("unit_cost", ("Unit Cost", "Unit Price", "Cost", "Net Cost"), True),
        F("currency", ("Currency",)),
    ),
)

SECTIONS: dict[str, tuple[Section, ...]] = {
    ReportType.remittance: (REMITTANCE_PAYMENTS, REMITTANCE_LINES),
    ReportType.chargebacks: (CHARGEBACKS,),
    ReportType.payables: (PAYABLES,),
    ReportType.coop: (COOP,),
    ReportType.returns: (RETURNS,),
    # an invoices upload is an invoice file, a line file, or both stacked (each recognised by its header)
    ReportType.invoices: (INVOICES, INVOICE_LINES),
    ReportType.invoice_lines: (INVOICE_LINES,),
}
SUPPORTED_REPORT_TYPES = tuple(SECTIONS)


def known_fields(report_type: str) -> set[str]:
    return {f.name for s in SECTIONS.get(report_type, ()) for f in s.fields}


# --- staged records ----------------------------------------------------------------------------------

STAGE_COLUMNS = (
    "kind",  # entry | payment | line | invoice_line (an invoice is its invoice entry)
    "row",
    "entry_type",
    "amount",
    "currency",
    "occurred_raw",
    "due_raw",
    "invoice_number",
    "payment_number",
    "po_number",
    "asin",
    "vendor_code",
    "store_code",
    "reference",
    "description",
    "quantity",
    "raw",
    "natural_key",
    # a remittance line's main entry (its payment, or the deduction) carries the payment line too: the line's
    # natural key here, its amounts in amount2 (invoice amount), withholding, terms_discount, amount_paid and
    # remaining, its document in invoice_number (or reference, for a deduction)
    "line_key",
    "amount2",  # payment: amount in payment currency; line: invoice amount
    "currency2",  # payment: payment currency
    "rate",
    "payment_type",
    "status",
    "withholding",
    "terms_discount",
    "amount_paid",
    "remaining",
)
Record = tuple[Any, ...]
_N = len(STAGE_COLUMNS)
_IDX = {name: i for i, name in enumerate(STAGE_COLUMNS)}


_EMPTY: list[Any] = [None] * _N


def record(kind: str, row: int, **values: Any) -> Record:
    out = _EMPTY.copy()
    out[0] = kind
    out[1] = row
    for name, value in values.items():
        out[_IDX[name]] = value
    return tuple(out)


LIMITS = {
    "invoice_number": 64,
    "payment_number": 64,
    "po_number": 64,
    "asin": 20,
    "vendor_code": 32,
    "store_code": 64,
    "reference": 128,
}
MAX_KEY = 300


def natural_key(*parts: str) -> str:
    key = ":".join(parts)
    if len(key) <= MAX_KEY:
        return key
    return key[:200] + "#" + hashlib.sha256(key.encode()).hexdigest()


class RowProblem(Exception):
    def __init__(self, column: str, value: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.value = value
        self.reason = reason


@dataclass
class RowContext:
    """What a row builder needs beyond the row: the file's date detector and defaults."""

    dates: DateDetector
    default_currency: str | None
    extras: list[str]  # original header names of unknown columns, kept in ``raw``
    headers: dict[str, str] = field(default_factory=dict)  # field name -> original header (for errors)
    payment_numbers: list[str] = field(default_factory=list)
    occurrences: dict[str, int] = field(default_factory=dict)
    amounts: dict[str, tuple[Decimal, str | None] | str] = field(default_factory=dict)  # see Cells.amount


Row = dict[str, str]  # field name -> cell text (stripped); unknown columns under their original header


_PLAIN = re.compile(r"-?\d{1,16}(?:\.\d{1,4})?")  # needs no parsing: Decimal reads it, and it is in range
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3}){1,4}(?:\.\d{1,4})?")  # 1,234,567.89
_QUANTUM = Decimal("0.0001")
_MAX_AMOUNT = Decimal("1e16")
_AMOUNT_CACHE_SIZE = 50_000


class Cells:
    """Typed access to one row's fields; every failure names the column as the file spells it.

    ``clean`` says the importer found no control character anywhere in the row, so ``text`` need not
    look for them cell by cell. Amounts take a fast path for plain numbers (``1234.5``, ``1,234.56``);
    the rest go through ``parse_amount`` once per distinct text (a bounded cache per file).
    """

    __slots__ = ("clean", "ctx", "row")

    def __init__(self, row: Row, ctx: RowContext, clean: bool = False) -> None:
        self.row = row
        self.ctx = ctx
        self.clean = clean

    def header(self, name: str) -> str:
        return self.ctx.headers.get(name, name)

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.row.get(name) or None
        if value is None:
            if required:
                raise RowProblem(self.header(name), None, "required value is empty")
            return None
        if not self.clean and has_control_characters(value):
            raise RowProblem(self.header(name), value, "contains control characters")
        limit = LIMITS.get(name)
        if limit is not None and len(value) > limit:
            raise RowProblem(self.header(name), value, f"longer than {limit} characters")
        return value

    def required(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def amount(self, name: str, *, required: bool = False) -> tuple[Decimal | None, str | None]:
        value = self.row.get(name)
        if not value:
            if required:
                raise RowProblem(self.header(name), None, "required value is empty")
            return None, None
        if _PLAIN.fullmatch(value):
            return Decimal(value), None
        if _GROUPED.fullmatch(value):
            return Decimal(value.replace(",", "")), None
        cache = self.ctx.amounts
        found = cache.get(value)
        if found is None:
            found = self._parse_amount(name, value)
            if len(cache) >= _AMOUNT_CACHE_SIZE:
                cache.clear()
            cache[value] = found
        if isinstance(found, str):
            raise RowProblem(self.header(name), value, found)
        return found

    def _parse_amount(self, name: str, value: str) -> tuple[Decimal, str | None] | str:
        """The amount, or the reason it is not one."""
        if not self.clean and has_control_characters(value):
            return "contains control characters"
        try:
            parsed = parse_amount(value)
        except ValueProblem as problem:
            return str(problem)
        if abs(parsed.value) >= _MAX_AMOUNT or parsed.value != parsed.value.quantize(_QUANTUM):
            return "out of range or more than 4 decimals"
        return parsed.value, parsed.currency

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if value.isascii() and value.isdigit() and len(value) < 10:
            return int(value)
        try:
            number = parse_amount(value).value
        except ValueProblem:
            raise RowProblem(self.header(name), value, "not a whole number") from None
        if number != number.to_integral_value() or abs(number) > 2**31 - 1:
            raise RowProblem(self.header(name), value, "not a whole number")
        return int(number)

    def date(self, name: str, *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if value not in self.ctx.dates.seen and not self.ctx.dates.check(value):
            raise RowProblem(self.header(name), value, "not a date in a supported format")
        return value

    def currency(self, name: str | None, *fallbacks: str | None) -> str:
        value = self.text(name) if name else None
        chosen = (value.upper() if value else None) or next((f for f in fallbacks if f), None)
        if chosen is None:
            raise RowProblem(
                self.header(name) if name else "currency",
                None,
                "no currency: add a currency column, a currency symbol, or upload with a store",
            )
        if chosen not in CURRENCY_CODES:
            raise RowProblem(self.header(name) if name else "currency", chosen, "not an ISO 4217 currency")
        return chosen

    def raw(self) -> str | None:
        if not self.ctx.extras:
            return None
        extras = {h: self.row[h] for h in self.ctx.extras if self.row.get(h)}
        return orjson.dumps(extras).decode() if extras else None


def _neg(value: Decimal) -> Decimal:
    return -abs(value)


# --- classification of remittance documents ----------------------------------------------------------

_SUFFIX = re.compile(r"^(.*\d)[\s\-_]*(SCR|SC|PCR|PC)$")
_COOP_AGREEMENT = re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{8}$")
REVERSAL_TYPES = {EntryType.shortage_reversal, EntryType.price_claim_reversal, EntryType.provision_reversal}


def classify(document: str, description: str | None) -> tuple[EntryType, str | None]:
    """The entry type of a remittance (or payables) document, and the invoice it claims against if any."""
    doc = document.strip().upper()
    desc = (description or "").upper()
    reversal = "REVERS" in desc
    if "PROVISION FOR RECEIVABLES" in desc or "PROVISION" in doc:
        return (EntryType.provision_reversal if reversal else EntryType.provision), None
    if doc.startswith("RETURNID_") or "PRODUCT RETURN" in desc or desc.startswith("RETURN"):
        return EntryType.return_, None
    if "IPAPUS" in doc or "PRICE PROTECTION" in desc:
        return EntryType.price_protection, None
    if "VCBSINV" in doc or "CHARGEBACK" in desc:
        return EntryType.chargeback, None
    if "DAMAGE ALLOWANCE" in desc or "DAMAGE" in desc:
        return EntryType.damage_allowance, None
    if _COOP_AGREEMENT.match(doc) or "COOP" in doc.replace("-", "") or "CO-OP" in desc or "COOP" in desc:
        return EntryType.coop, None
    suffix = _SUFFIX.match(doc)
    if suffix:
        base, kind = suffix.group(1), suffix.group(2)
        return {
            "SC": EntryType.shortage_claim,
            "SCR": EntryType.shortage_reversal,
            "PC": EntryType.price_claim,
            "PCR": EntryType.price_claim_reversal,
        }[kind], base
    if "PRICE VARIANCE" in desc or "PRICE CLAIM" in desc or "PPV" in desc:
        return (EntryType.price_claim_reversal if reversal else EntryType.price_claim), None
    if "SHORTAGE" in desc:
        return (EntryType.shortage_reversal if reversal else EntryType.shortage_claim), None
    return EntryType.invoice, None


def _signed(entry_type: EntryType, value: Decimal) -> Decimal:
    return abs(value) if entry_type in REVERSAL_TYPES else _neg(value)


# --- row builders ------------------------------------------------------------------------------------


def remittance_payment(c: Cells, row: int) -> list[Record]:
    number = c.required("payment_number")
    occurred = c.date("payment_date", required=True)
    amount, symbol = c.amount("amount", required=True)
    currency = c.currency("invoice_currency", symbol, c.ctx.default_currency)
    payment_amount, symbol2 = c.amount("payment_amount")
    payment_currency = c.currency("payment_currency", symbol2, currency) if payment_amount is not None else None
    rate, _ = c.amount("exchange_rate")
    c.ctx.payment_numbers.append(number)
    return [
        record(
            "payment",
            row,
            amount=amount,
            currency=currency,
            occurred_raw=occurred,
            payment_number=number,
            amount2=payment_amount,
            currency2=payment_currency,
            rate=rate,
            payment_type=c.text("payment_type"),
            status=c.text("payment_status"),
            natural_key=natural_key("payment", number),
            raw=c.raw(),
        )
    ]


_E = {name: i for i, name in enumerate(STAGE_COLUMNS)}
_INVOICE, _PAYMENT = EntryType.invoice.value, EntryType.payment.value
_C_AMOUNT = _E["amount"]
_C_AMOUNT2 = _E["amount2"]
_C_AMOUNT_PAID = _E["amount_paid"]
_C_CURRENCY = _E["currency"]
_C_DESCRIPTION = _E["description"]
_C_LINE_KEY = _E["line_key"]
_C_ENTRY_TYPE = _E["entry_type"]
_C_INVOICE_NUMBER = _E["invoice_number"]
_C_NATURAL_KEY = _E["natural_key"]
_C_OCCURRED_RAW = _E["occurred_raw"]
_C_PAYMENT_NUMBER = _E["payment_number"]
_C_RAW = _E["raw"]
_C_REFERENCE = _E["reference"]
_C_REMAINING = _E["remaining"]
_C_ROW = _E["row"]
_C_TERMS_DISCOUNT = _E["terms_discount"]
_C_WITHHOLDING = _E["withholding"]


def remittance_line(c: Cells, row: int) -> list[Record]:
    """Per line: the invoice entry (when the line gives its amount) and the payment entry (plus terms
    discount and withholding), or the deduction the document names; the payment line rides on the payment
    entry or the deduction (``line_key``).

    The hot path of a remittance: records are built from a template, not by keyword.
    """
    payment = c.text("payment_number")
    if payment is None:
        if len(set(c.ctx.payment_numbers)) != 1:
            raise RowProblem(c.header("payment_number"), None, "required value is empty")
        payment = c.ctx.payment_numbers[0]
    document = c.required("invoice_number")
    occurred = c.date("invoice_date", required=True)
    description = c.text("description")
    invoice_amount, s1 = c.amount("invoice_amount")
    paid, s2 = c.amount("amount_paid", required=True)
    assert paid is not None
    withholding, _ = c.amount("withholding_amount")
    discount, _ = c.amount("terms_discount")
    remaining, _ = c.amount("remaining_amount")
    currency = c.currency("invoice_currency", s1, s2, c.ctx.default_currency)
    if description is None and document.isascii() and document.isdigit():
        entry_type, base = EntryType.invoice, None  # the common case, without the classification rules
    else:
        entry_type, base = classify(document, description)
    raw = c.raw()
    common = _EMPTY.copy()
    common[_C_ROW] = row
    common[_C_CURRENCY] = currency
    common[_C_OCCURRED_RAW] = occurred
    common[_C_PAYMENT_NUMBER] = payment
    common[_C_DESCRIPTION] = description
    # the main entry (the payment, or the deduction) carries the payment line: one staged record, not two
    main = common.copy()
    main[0] = "entry"
    main[_C_RAW] = raw
    main[_C_AMOUNT2] = invoice_amount
    main[_C_WITHHOLDING] = withholding
    main[_C_TERMS_DISCOUNT] = discount
    main[_C_AMOUNT_PAID] = paid
    main[_C_REMAINING] = remaining
    main[_C_LINE_KEY] = natural_key("line", payment, document)
    out: list[Record] = []
    if entry_type is EntryType.invoice:
        if invoice_amount is not None:
            e = common.copy()
            e[0] = "entry"
            e[_C_ENTRY_TYPE] = _INVOICE
            e[_C_AMOUNT] = invoice_amount
            e[_C_INVOICE_NUMBER] = document
            e[_C_NATURAL_KEY] = natural_key("invoice", document)
            e[_C_RAW] = raw
            out.append(tuple(e))
        main[_C_ENTRY_TYPE] = _PAYMENT
        main[_C_AMOUNT] = -paid
        main[_C_INVOICE_NUMBER] = document
        main[_C_NATURAL_KEY] = natural_key("payment", payment, document)
        out.append(tuple(main))
        for kind, value in ((EntryType.terms_discount, discount), (EntryType.withholding, withholding)):
            if value:
                e = common.copy()
                e[0] = "entry"
                e[_C_ENTRY_TYPE] = kind.value
                e[_C_AMOUNT] = _neg(value)
                e[_C_INVOICE_NUMBER] = document
                e[_C_NATURAL_KEY] = natural_key("payment", payment, document, kind.value)
                out.append(tuple(e))
    else:
        value = paid if paid else (invoice_amount if invoice_amount is not None else paid)
        main[_C_ENTRY_TYPE] = entry_type.value
        main[_C_AMOUNT] = _signed(entry_type, value)
        main[_C_INVOICE_NUMBER] = base
        main[_C_REFERENCE] = document
        main[_C_NATURAL_KEY] = natural_key("deduction", document)
        out.append(tuple(main))
    return out


def chargeback(c: Cells, row: int) -> list[Record]:
    issue = c.required("issue_id")
    charge, symbol = c.amount("financial_charge", required=True)
    assert charge is not None
    occurred = c.date("creation_date", required=True)
    due = c.date("dispute_by")
    description = " / ".join(v for v in (c.text("issue_type"), c.text("sub_type")) if v) or None
    return [
        record(
            "entry",
            row,
            entry_type=EntryType.chargeback.value,
            amount=_neg(charge),
            currency=c.currency("currency", symbol, c.ctx.default_currency),
            occurred_raw=occurred,
            due_raw=due,
            po_number=c.text("po_number"),
            asin=c.text("asin"),
            vendor_code=c.text("vendor_code"),
            reference=issue if len(issue) <= LIMITS["reference"] else issue[: LIMITS["reference"]],
            description=description,
            quantity=c.integer("quantity"),
            natural_key=natural_key("chargeback", issue),
            raw=c.raw(),
        )
    ]


def payable(c: Cells, row: int) -> list[Record]:
    number = c.required("transaction_number")
    occurred = c.date("transaction_date", required=True)
    kind = c.required("type")
    amount, symbol = c.amount("invoice_amount", required=True)
    assert amount is not None
    entry_type, base = classify(number, kind)
    if entry_type is EntryType.invoice:
        entry_type = EntryType.adjustment
    return [
        record(
            "entry",
            row,
            entry_type=entry_type.value,
            amount=_signed(entry_type, amount),
            currency=c.currency("currency", symbol, c.ctx.default_currency),
            occurred_raw=occurred,
            invoice_number=base,
            vendor_code=c.text("vendor_code"),
            reference=number if len(number) <= LIMITS["reference"] else None,
            description=kind,
            natural_key=natural_key("deduction", number),
            raw=c.raw(),
        )
    ]


_COOP_IDENTITY = ("invoice", "transaction_type", "po_number", "asin", "receive_date", "return_date", "quantity")


def coop(c: Cells, row: int) -> list[Record]:
    invoice = c.required("invoice")
    occurred = c.date("invoice_day", required=True)
    rebate, symbol = c.amount("rebate", required=True)
    assert rebate is not None
    # co-op backup lines carry no id: a line is its content (plus its occurrence, for true repeats)
    identity = "|".join(c.row.get(k, "") for k in _COOP_IDENTITY) + "|" + str(rebate)
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()[:20]
    n = c.ctx.occurrences.get(digest, 0) + 1
    c.ctx.occurrences[digest] = n
    return [
        record(
            "entry",
            row,
            entry_type=EntryType.coop.value,
            amount=-rebate,
            currency=c.currency("agreement_currency", symbol, c.ctx.default_currency),
            occurred_raw=occurred,
            po_number=c.text("po_number"),
            asin=c.text("asin"),
            reference=invoice if len(invoice) <= LIMITS["reference"] else None,
            description=c.text("transaction_type"),
            quantity=c.integer("quantity"),
            natural_key=natural_key("coop", invoice, f"{digest}#{n}"),
            raw=c.raw(),
        )
    ]


def vendor_return(c: Cells, row: int) -> list[Record]:
    request = c.required("request_id")
    refund, symbol = c.amount("approved_refund", required=True)
    assert refund is not None
    _, s2 = c.amount("requested_refund")
    description = " / ".join(v for v in (c.text("request_type"), c.text("status")) if v) or None
    return [
        record(
            "entry",
            row,
            entry_type=EntryType.return_.value,
            amount=_neg(refund),
            currency=c.currency("currency", symbol, s2, c.ctx.default_currency),
            occurred_raw=c.date("request_date"),
            vendor_code=c.text("vendor_code"),
            reference=request if len(request) <= LIMITS["reference"] else None,
            description=description,
            quantity=c.integer("approved_quantity"),
            natural_key=natural_key("return", request),
            raw=c.raw(),
        )
    ]


def erp_invoice(c: Cells, row: int) -> list[Record]:
    number = c.required("invoice_number")
    occurred = c.date("invoice_date", required=True)
    due = c.date("due_date")
    amount, symbol = c.amount("amount", required=True)
    currency = c.currency("currency", symbol)
    key = natural_key("invoice", number)
    common = {
        "currency": currency,
        "occurred_raw": occurred,
        "due_raw": due,
        "invoice_number": number,
        "po_number": c.text("po_number"),
        "vendor_code": c.text("vendor_code"),
        "store_code": c.text("store_code"),
    }
    # the invoices row is made from this entry when it is loaded
    return [
        record("entry", row, entry_type=EntryType.invoice.value, amount=amount, natural_key=key, raw=c.raw(), **common)
    ]


def invoice_line(c: Cells, row: int) -> list[Record]:
    """One line of an ERP invoice: no ledger entry (the invoice's entry carries the money), an invoice line.

    A line's identity is its invoice, its ASIN and which occurrence of that pair it is in the file, so
    re-importing the same lines adds nothing.
    """
    number = c.required("invoice_number")
    asin = c.required("asin")
    quantity = c.integer("quantity", required=True)
    unit_cost, symbol = c.amount("unit_cost", required=True)
    assert quantity is not None and unit_cost is not None
    if unit_cost < 0:
        raise RowProblem(c.header("unit_cost"), c.row.get("unit_cost"), "a unit cost cannot be negative")
    if abs(quantity * unit_cost) >= _MAX_AMOUNT:
        raise RowProblem(c.header("quantity"), str(quantity), "quantity × unit cost is out of range")
    currency = None
    if c.text("currency") or symbol or c.ctx.default_currency:
        currency = c.currency("currency", symbol, c.ctx.default_currency)
    pair = f"{number}\x1f{asin}"
    n = c.ctx.occurrences.get(pair, 0) + 1
    c.ctx.occurrences[pair] = n
    return [
        record(
            "invoice_line",
            row,
            invoice_number=number,
            asin=asin,
            quantity=quantity,
            amount=unit_cost,
            currency=currency,
            natural_key=natural_key("invoice_line", number, f"{asin}#{n}"),
            raw=c.raw(),
        )
    ]


Builder = Callable[[Cells, int], list[Record]]
BUILDERS: dict[tuple[str, str], Builder] = {
    (ReportType.remittance, "payments"): remittance_payment,
    (ReportType.remittance, "invoices"): remittance_line,
    (ReportType.chargebacks, "chargebacks"): chargeback,
    (ReportType.payables, "payables"): payable,
    (ReportType.coop, "coop"): coop,
    (ReportType.returns, "returns"): vendor_return,
    (ReportType.invoices, "invoices"): erp_invoice,
    (ReportType.invoices, "lines"): invoice_line,
    (ReportType.invoice_lines, "lines"): invoice_line,
}
