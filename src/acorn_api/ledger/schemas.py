"""Request and response shapes of imports, import mappings, the ledger, invoices and payments."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

from acorn_api.core.money import Amount
from acorn_api.core.time import UTCDateTime
from acorn_api.ledger.models import EntryType, ImportStatus, ReportType
from acorn_api.ledger.parsing import DATE_FORMATS, has_control_characters
from acorn_api.ledger.reports import SUPPORTED_REPORT_TYPES, known_fields


def _no_control_characters(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[str, AfterValidator(_no_control_characters)]
"""A text input that never carries a NUL or another control character into PostgreSQL."""


def _iso_date_only(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date as YYYY-MM-DD")
    if isinstance(value, int | float):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]
"""A date given as ``YYYY-MM-DD`` only (pydantic alone would also read ``0`` as 1970-01-01)."""


class RowError(BaseModel):
    row: int = Field(description="line number in the file (CSV) or row number (XLSX, sheets counted on)")
    column: str | None = Field(description="the column as the file names it")
    value: str | None
    reason: str


class ImportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    report_type: ReportType
    status: ImportStatus
    file_name: str | None
    sha256: str = Field(description="SHA-256 of the uploaded bytes; the same file uploaded again is this import")
    size_bytes: int
    raw_document_id: uuid.UUID | None = Field(description="the file in the raw document archive")
    store_id: uuid.UUID | None
    mapping_id: uuid.UUID | None
    reject_file_on_errors: bool
    detected_format: str | None = Field(description="csv or xlsx")
    encoding: str | None = Field(description="utf-8, utf-8-sig (BOM), utf-16, cp1252 (CSV only)")
    date_format: str | None = Field(description="the file's date format, detected or given at upload")
    rows_total: int
    rows_loaded: int = Field(description="rows that added at least one ledger record")
    rows_duplicate: int = Field(description="valid rows whose records were all in the ledger already")
    rows_rejected: int
    row_errors: list[RowError] = Field(description="the first 1,000 row errors")
    error: dict[str, Any] | None = Field(description="why the whole file failed: `code`, `message`, details")
    attempts: int
    created_at: UTCDateTime
    started_at: UTCDateTime | None
    finished_at: UTCDateTime | None


ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class MappingBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: dict[ColumnName, ColumnName] = Field(
        description='the file\'s header → ACORN\'s field name, e.g. `{"Amount Paid": "amount_paid"}`',
        examples=[{"Net Paid": "amount_paid"}],
        max_length=100,
    )
    is_default: StrictBool = Field(default=False, description="used for uploads of this report type without mapping_id")

    @field_validator("columns")
    @classmethod
    def _no_control_characters(cls, value: dict[str, str]) -> dict[str, str]:
        for key, name in value.items():
            if has_control_characters(key) or has_control_characters(name):
                raise ValueError("column names must not contain control characters")
        return value


class MappingCreate(MappingBase):
    report_type: ReportType
    name: Annotated[PlainText, Field(min_length=1, max_length=200)]

    @field_validator("report_type")
    @classmethod
    def _supported(cls, value: ReportType) -> ReportType:
        if value not in SUPPORTED_REPORT_TYPES:
            raise ValueError(f"{value} files are not imported yet")
        return value

    def unknown_fields(self) -> list[str]:
        fields = known_fields(self.report_type)
        return sorted(n for n in self.columns.values() if n not in fields)


class MappingUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[PlainText | None, Field(min_length=1, max_length=200)] = None
    columns: dict[ColumnName, ColumnName] | None = Field(default=None, max_length=100)

    @field_validator("columns")
    @classmethod
    def _no_control_characters(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, name in (value or {}).items():
            if has_control_characters(key) or has_control_characters(name):
                raise ValueError("column names must not contain control characters")
        return value

    is_default: StrictBool | None = None


class MappingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    report_type: ReportType
    name: str
    columns: dict[str, str]
    is_default: bool
    created_at: UTCDateTime
    updated_at: UTCDateTime


class MappingDeleted(BaseModel):
    id: uuid.UUID
    deleted: bool


class LedgerEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    entry_type: EntryType
    amount: Amount = Field(description="+ owed to the vendor, − taken by Amazon or settled")
    currency: str
    occurred_on: date
    due_on: date | None
    invoice_number: str | None
    payment_number: str | None
    po_number: str | None
    asin: str | None
    vendor_code: str | None
    store_id: uuid.UUID | None
    reference: str | None = Field(description="issue id, deduction document, agreement or return id")
    description: str | None
    quantity: int | None
    source_import_id: uuid.UUID | None
    source_row: int | None = Field(description="the row of the source file (see the import's row numbering)")
    source_submission_id: uuid.UUID | None
    raw: dict[str, Any] = Field(description="the file's columns ACORN does not know, as they were")
    natural_key: str
    created_at: UTCDateTime


class InvoiceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    invoice_number: str
    invoice_date: date | None
    due_on: date | None
    po_number: str | None
    vendor_code: str | None
    store_id: uuid.UUID | None
    amount: Amount
    currency: str
    source: str = Field(description="import (ERP file), remittance or submission")
    source_import_id: uuid.UUID | None
    source_submission_id: uuid.UUID | None
    ledger_entry_id: uuid.UUID | None
    created_at: UTCDateTime


class InvoiceLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    asin: str
    quantity: int
    unit_cost: Amount
    amount: Amount = Field(description="quantity × unit cost")
    currency: str = Field(description="the line file's currency, else the invoice's")
    source_import_id: uuid.UUID | None
    source_row: int | None


class InvoiceDetail(InvoiceOut):
    balance: Amount = Field(description="sum of every entry on this invoice: what is still owed to the vendor")
    entries: list[LedgerEntryOut]
    lines: list[InvoiceLineOut] = Field(
        description="the invoice's lines, from invoice line files (report type `invoices` or `invoice_lines`)"
    )


class PaymentLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    invoice_number: str
    invoice_date: date | None
    description: str | None
    entry_type: EntryType
    invoice_amount: Amount | None
    currency: str
    withholding_amount: Amount | None
    terms_discount: Amount | None
    amount_paid: Amount | None
    remaining_amount: Amount | None
    ledger_entry_id: uuid.UUID | None
    source_import_id: uuid.UUID | None
    source_row: int | None


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    payment_number: str
    payment_date: date | None
    amount: Amount | None
    currency: str
    payment_amount: Amount | None
    payment_currency: str | None
    exchange_rate: Amount | None
    payment_type: str | None
    payment_status: str | None
    source_import_id: uuid.UUID | None
    created_at: UTCDateTime


class PaymentDetail(PaymentOut):
    lines: list[PaymentLineOut]


DateFormat = Annotated[str, Field(description="one of: " + ", ".join(DATE_FORMATS), examples=["dd/MM/yyyy"])]
