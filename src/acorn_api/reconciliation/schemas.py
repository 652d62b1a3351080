"""Request and response models of reconciliation and analytics."""

from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from acorn_api.core.money import Amount, Money
from acorn_api.core.time import UTCDateTime
from acorn_api.reconciliation.models import BalanceStatus, JournalCategory, RunKind, RunStatus

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD`` between 1900 and 2999: no epoch numbers, no dates that overflow date arithmetic."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    if not "1900" <= value[:4] <= "2999":
        raise ValueError("must be between 1900-01-01 and 2999-12-31")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RunKind = Field(
        default=RunKind.full,
        description="`full` re-matches every invoice; an incremental run only exists after an import",
    )


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: RunKind
    status: RunStatus
    import_id: uuid.UUID | None
    invoices_matched: int
    newly_unexplained: int = Field(description="invoices that became `unexplained_short` in this run")
    unmatched_payments: int
    journal_lines: int = Field(description="accounting lines this run appended to the journal")
    timings_ms: dict[str, Any]
    error: dict[str, Any] | None
    started_at: UTCDateTime | None
    finished_at: UTCDateTime | None
    created_at: UTCDateTime


class InvoiceBalanceOut(BaseModel):
    """Where one invoice's money is: invoiced = paid + deducted − reversed + written_off + open_balance."""

    invoice_number: str
    invoice_id: uuid.UUID | None
    status: BalanceStatus
    currency: str
    invoice_date: date
    due_on: date | None
    po_number: str | None
    store_id: uuid.UUID | None
    vendor_code: str | None
    invoiced: Money
    paid: Money
    deducted: Money = Field(description="deductions taken and not written off")
    deductions: dict[str, Money] = Field(description="every deduction by entry type, before write-offs")
    reversed: Money = Field(description="deductions that came back (reversals)")
    written_off: Money
    disputed: Money = Field(description="deductions whose refund case is in dispute")
    open_balance: Money
    open_deductions: Money = Field(description="deductions neither reversed nor written off")
    unconverted_entries: int = Field(description="entries in another currency with no known exchange rate")
    entry_count: int
    last_activity_on: date | None


class InvoicePage(BaseModel):
    data: list[InvoiceBalanceOut]
    next_cursor: str | None
    has_more: bool


class SummaryGroupBy(StrEnum):
    none = "none"
    store = "store"
    region = "region"
    marketplace = "marketplace"
    vendor_code = "vendor_code"
    month = "month"
    deduction_type = "deduction_type"


class SummaryRow(BaseModel):
    group: str | None = Field(description="the group's key (store id, region, month `YYYY-MM`, …); null = none")
    label: str | None = Field(default=None, description="a readable name for the group (a store's code)")
    currency: str
    invoice_count: int
    invoiced: Money | None = Field(description="null when grouped by deduction type")
    paid: Money | None
    deducted: Money = Field(description="by deduction type: everything of that type, before write-offs")
    disputed: Money | None
    recovered: Money | None
    written_off: Money | None
    open_balance: Money | None
    unexplained_short: Money | None
    recovery_rate: Amount | None = Field(description="recovered ÷ (deducted + written off); null if nothing deducted")


class RateUsed(BaseModel):
    from_currency: str
    to_currency: str
    rate: Amount
    payment_number: str | None = Field(description="the remittance whose rate this is")
    payment_date: date | None


class SummaryOut(BaseModel):
    date_from: date | None
    date_to: date | None
    group_by: SummaryGroupBy
    report_currency: str | None
    rates_used: list[RateUsed]
    rows: list[SummaryRow]


class AgingBucket(StrEnum):
    not_due = "not_due"
    d0_30 = "0_30"
    d31_60 = "31_60"
    d61_90 = "61_90"
    d90_plus = "90_plus"


class AgingRow(BaseModel):
    bucket: AgingBucket = Field(description="days past the due date")
    currency: str
    open_balance: Money
    open_deductions: Money
    unexplained_short: Money


class AgingOut(BaseModel):
    as_of: date
    rows: list[AgingRow]


class Candidate(BaseModel):
    invoice_number: str
    open_balance: Money
    invoice_date: date
    due_on: date | None
    po_number: str | None
    score: Amount = Field(description="0–1: amount 0.5 (exact) or 0.3 (within 2 %), PO 0.3, due date ±15 d 0.2")
    reasons: list[str]


class UnmatchedPaymentOut(BaseModel):
    payment_line_id: uuid.UUID
    payment_number: str
    invoice_number: str = Field(description="the invoice number the remittance names, unknown here")
    payment_date: date | None
    po_number: str | None
    amount: Money
    candidates: list[Candidate]


class UnmatchedPage(BaseModel):
    data: list[UnmatchedPaymentOut]
    next_cursor: str | None
    has_more: bool


class SuggestionKind(StrEnum):
    dispute_case = "dispute_case"
    redispute_case = "redispute_case"
    chase_unpaid = "chase_unpaid"
    investigate_short = "investigate_short"
    match_payment = "match_payment"


class SuggestionOut(BaseModel):
    rank: int
    kind: SuggestionKind
    reason: str
    amount_at_stake: Money
    subject_id: str = Field(description="case id, invoice number or payment line id, depending on `kind`")
    invoice_number: str | None
    due: date | None = Field(description="dispute deadline, invoice due date or payment date")


class SuggestionList(BaseModel):
    as_of: date
    data: list[SuggestionOut]


class JournalLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="position in the feed; strictly increasing, never reused")
    cursor: str = Field(description="pass as `since_cursor` to continue after this line")
    entry_date: date
    category: JournalCategory
    deduction_type: str | None
    amount: Amount = Field(description="debit positive, credit negative; each ledger entry's lines sum to zero")
    currency: str
    ledger_entry_id: uuid.UUID
    entry_type: str
    invoice_number: str | None
    payment_number: str | None
    reference: str | None
    store_id: uuid.UUID | None


class JournalPage(BaseModel):
    data: list[JournalLineOut]
    next_cursor: str = Field(description="the cursor to poll with next (the last line's, or the one you sent)")
    has_more: bool


class DeductionGroupBy(StrEnum):
    type = "type"
    store = "store"
    asin = "asin"
    issue_type = "issue_type"


class Interval(StrEnum):
    month = "month"
    quarter = "quarter"
    year = "year"


class DeductionTrendPoint(BaseModel):
    period: date = Field(description="first day of the period")
    group: str | None
    currency: str
    deducted: Money
    count: int
    recovered: Money
    recovery_rate: Amount | None
    invoiced: Money = Field(description="invoiced value of the period (of the store, when grouped by store)")
    share_of_invoiced: Amount | None = Field(description="deducted ÷ invoiced")


class DeductionTrends(BaseModel):
    interval: Interval
    group_by: DeductionGroupBy
    data: list[DeductionTrendPoint]


class PurchaseOrderTrendPoint(BaseModel):
    period: date
    asin: str | None
    currency: str | None
    items: int
    ordered_units: int
    acknowledged_units: int
    received_units: int
    acknowledgement_rate: Amount | None = Field(description="acknowledged ÷ ordered units")
    fill_rate: Amount | None = Field(description="received ÷ ordered units")
    ordered_cost: Money | None
    average_unit_cost: Money | None


class PurchaseOrderTrends(BaseModel):
    interval: Interval
    data: list[PurchaseOrderTrendPoint]


def money(amount: Decimal | None, currency: str) -> Money:
    return Money(amount=amount if amount is not None else Decimal(0), currency=currency)
