"""Request and response shapes of /v1/refund-cases, /v1/case-rules and /v1/case-settings."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from acorn_api.core.money import Amount
from acorn_api.core.time import UTCDateTime
from acorn_api.ledger.models import DEDUCTION_TYPES
from acorn_api.refunds.models import CaseStatus, CaseType
from acorn_api.refunds.policy import days_left

if TYPE_CHECKING:
    from acorn_api.core.errors import AcornError
    from acorn_api.refunds.models import RefundCase


class DeductionType(StrEnum):
    """The ledger entry types that open a case."""

    chargeback = "chargeback"
    coop = "coop"
    damage_allowance = "damage_allowance"
    price_claim = "price_claim"
    price_protection = "price_protection"
    provision = "provision"
    return_ = "return"
    shortage_claim = "shortage_claim"


assert {t.value for t in DeductionType} == {t.value for t in DEDUCTION_TYPES}

_CONTROL = {chr(c) for c in range(32)} - {"\t"} | {"\x7f"}


def _clean_text(value: str) -> str:
    if any(ch in _CONTROL for ch in value):
        raise ValueError("must not contain control characters")
    return value


Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9 _.:/-]+$")]


class CaseOut(BaseModel):
    """A refund case: one deduction, what it is, what it is worth, by when, and where it stands."""

    id: uuid.UUID
    type: CaseType
    subtype: str | None
    status: CaseStatus
    amount: Amount = Field(description="what Amazon took (positive)")
    currency: str
    recovered_amount: Amount
    written_off_amount: Amount
    open_amount: Amount = Field(description="amount − recovered − written off")
    store_id: uuid.UUID | None
    vendor_code: str | None
    invoice_number: str | None
    po_number: str | None
    asin: str | None
    payment_number: str | None
    reference: str | None
    opened_on: date
    invoice_due_on: date | None
    dispute_deadline: date | None
    days_left: int | None = Field(description="days until the deadline on the store's calendar; negative when past")
    deadline_missed: bool
    priority: Amount = Field(description="expected recovery weighted by urgency; work the highest first")
    likelihood: Amount = Field(description="0–1: chance of recovery from type, evidence and time left")
    expected_recovery: Amount = Field(description="open amount × likelihood")
    assignee: str | None
    tags: list[str]
    dispute_count: int
    dispute_reference: str | None
    rule_id: uuid.UUID | None
    origin_entry_id: uuid.UUID
    origin_entry_type: str
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime

    @classmethod
    def of(cls, case: RefundCase, now: datetime) -> CaseOut:
        return cls(
            id=case.id,
            type=CaseType(case.type),
            subtype=case.subtype,
            status=CaseStatus(case.status),
            amount=case.amount,
            currency=case.currency,
            recovered_amount=case.recovered_amount,
            written_off_amount=case.written_off_amount,
            open_amount=max(case.amount - case.recovered_amount - case.written_off_amount, Decimal(0)),
            store_id=case.store_id,
            vendor_code=case.vendor_code,
            invoice_number=case.invoice_number,
            po_number=case.po_number,
            asin=case.asin,
            payment_number=case.payment_number,
            reference=case.reference,
            opened_on=case.opened_on,
            invoice_due_on=case.invoice_due_on,
            dispute_deadline=case.dispute_deadline,
            days_left=days_left(case.dispute_deadline, now, case.timezone),
            deadline_missed=case.deadline_missed,
            priority=case.priority,
            likelihood=case.likelihood,
            expected_recovery=case.expected_recovery,
            assignee=case.assignee,
            tags=list(case.tags or []),
            dispute_count=case.dispute_count,
            dispute_reference=case.dispute_reference,
            rule_id=case.rule_id,
            origin_entry_id=case.origin_entry_id,
            origin_entry_type=case.origin_entry_type,
            version=case.version,
            created_at=case.created_at,
            updated_at=case.updated_at,
        )


class EvidenceItem(BaseModel):
    kind: Literal[
        "deduction",
        "purchase_order",
        "acknowledgement",
        "shipment",
        "receiving_status",
        "invoice",
        "remittance_line",
        "raw_document",
    ]
    present: bool
    description: str
    reference: str | None = None
    raw_document_id: uuid.UUID | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class CaseDetail(CaseOut):
    ledger_entry_ids: list[uuid.UUID] = Field(description="the deduction that opened the case, then every linked entry")
    evidence: list[EvidenceItem]
    missing_evidence: list[str] = Field(description="kinds of evidence a dispute of this type needs that ACORN lacks")
    allowed_transitions: list[CaseStatus]


class CaseSort(StrEnum):
    created_at = "created_at"
    priority = "priority"
    dispute_deadline = "dispute_deadline"
    amount = "amount"


class CaseUpdate(BaseModel):
    """Only the fields present change. ``version`` (or ``If-Match``) guards against lost updates."""

    model_config = ConfigDict(extra="forbid")

    assignee: Text200 | None = Field(default=None, description="null unassigns")
    tags: SkipJsonSchema[None] | Annotated[list[Tag], Field(max_length=20)] = None
    version: int | SkipJsonSchema[None] = Field(default=None, ge=1, description="the version you read; stale → 409")

    @field_validator("tags", "version", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value

    @field_validator("assignee")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _clean_text(value) if value is not None else None


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: CaseStatus
    version: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, description="the version you read (or send If-Match); stale → 409/412"
    )
    note: Annotated[str, Field(max_length=4000)] | SkipJsonSchema[None] = Field(
        default=None, description="required for written_off (the reason)"
    )
    amount: Amount | SkipJsonSchema[None] = Field(
        default=None,
        description="recovered: defaults to the open amount; partially_recovered: required; written_off: "
        "defaults to the open amount",
    )
    dispute_reference: Annotated[str, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = Field(
        default=None, description="required for disputed and redisputed"
    )

    @field_validator("version", "note", "amount", "dispute_reference", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out instead")
        return value

    @field_validator("note", "dispute_reference")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _clean_text(value) if value is not None else None

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (value <= 0 or value.as_tuple().exponent < -4):  # type: ignore[operator]
            raise ValueError("must be > 0 with at most 4 decimals")
        return value


class BulkTransitionItem(TransitionIn):
    id: uuid.UUID


class BulkTransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BulkTransitionItem] = Field(min_length=1, max_length=500)


class BulkItemResult(BaseModel):
    id: uuid.UUID
    ok: bool
    status: CaseStatus | None = None
    version: int | None = None
    problem: dict[str, Any] | None = Field(default=None, description="the problem (type, title, status, detail)")

    @classmethod
    def failed(cls, case_id: uuid.UUID, exc: AcornError) -> BulkItemResult:
        problem: dict[str, Any] = {"type": exc.type_uri, "title": exc.title, "status": exc.status, "detail": exc.detail}
        problem.update({k: v for k, v in exc.extra.items() if k not in problem})
        if exc.errors:
            problem["errors"] = [e.model_dump() for e in exc.errors]
        return cls(id=case_id, ok=False, problem=problem)


class BulkTransitionOut(BaseModel):
    succeeded: int
    failed: int
    results: list[BulkItemResult]


class CaseEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID | None = Field(description="null for the synthetic `created` item")
    kind: str
    from_status: str | None
    to_status: str | None
    note: str | None
    amount: Amount | None
    dispute_reference: str | None
    ledger_entry_id: uuid.UUID | None
    actor: str
    data: dict[str, Any]
    created_at: UTCDateTime


# ---------------------------------------------------------------- rules


class PatternKind(StrEnum):
    contains = "contains"
    glob = "glob"


def _pattern(value: str | None) -> str | None:
    return _clean_text(value) if value is not None else None


class RuleFields(BaseModel):
    name: Text200 | None = None
    is_active: bool | None = None
    entry_types: Annotated[list[DeductionType], Field(max_length=20)] | None = None
    description_pattern: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="case-insensitive; `contains`: a plain substring, `glob`: anchored, `*` and `?` wildcards",
    )
    pattern_kind: PatternKind | None = None
    vendor_code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    store_id: uuid.UUID | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    set_type: CaseType | None = None
    set_subtype: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    set_assignee: Text200 | None = None
    set_tags: Annotated[list[Tag], Field(max_length=20)] | None = None
    needs_review: bool | None = Field(
        default=None, description="true/false decide review; null leaves it to the threshold (or a later rule)"
    )

    @field_validator("description_pattern", "set_subtype", "set_assignee", "name")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _pattern(value)

    @field_validator("min_amount", "max_amount")
    @classmethod
    def _non_negative(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError("must be ≥ 0 (amounts are compared as magnitudes)")
        return value

    @model_validator(mode="after")
    def _range(self) -> RuleFields:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("max_amount must not be below min_amount")
        return self


class RuleCreate(RuleFields):
    model_config = ConfigDict(extra="forbid")

    name: Text200
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        default=None, description="lower runs first; default: last"
    )
    is_active: bool = True
    entry_types: Annotated[list[DeductionType], Field(max_length=20)] = Field(default_factory=list)
    pattern_kind: PatternKind = PatternKind.contains
    set_tags: Annotated[list[Tag], Field(max_length=20)] = Field(default_factory=list)


class RuleUpdate(RuleFields):
    """Only the fields present change; null clears an optional match or effect."""

    model_config = ConfigDict(extra="forbid")

    name: Text200 | SkipJsonSchema[None] = None
    is_active: bool | SkipJsonSchema[None] = None
    entry_types: Annotated[list[DeductionType], Field(max_length=20)] | SkipJsonSchema[None] = None
    pattern_kind: PatternKind | SkipJsonSchema[None] = None
    set_tags: Annotated[list[Tag], Field(max_length=20)] | SkipJsonSchema[None] = None
    position: int | SkipJsonSchema[None] = Field(default=None, ge=0, le=1_000_000)
    version: int | SkipJsonSchema[None] = Field(default=None, ge=1, description="the version you read; stale → 409")

    @field_validator(
        "name", "is_active", "entry_types", "pattern_kind", "set_tags", "position", "version", mode="before"
    )
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    position: int
    name: str
    is_active: bool
    entry_types: list[str]
    description_pattern: str | None
    pattern_kind: PatternKind
    vendor_code: str | None
    store_id: uuid.UUID | None
    min_amount: Amount | None
    max_amount: Amount | None
    set_type: CaseType | None
    set_subtype: str | None
    set_assignee: str | None
    set_tags: list[str]
    needs_review: bool | None
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class RuleList(BaseModel):
    data: list[RuleOut] = Field(description="every rule of the account, in evaluation order")
    next_cursor: None = None
    has_more: bool = False


class ApplyOut(BaseModel):
    reclassified: int = Field(
        description="cases not yet disputed whose type, subtype, assignee, tags or deadline changed"
    )
    status_changes: int = Field(description="of those, cases moved between open and needs_review")


# ---------------------------------------------------------------- settings


class Basis(StrEnum):
    due_on = "due_on"
    notice = "notice"


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    basis: Basis = Field(description="due_on: the invoice due date; notice: the deduction's date")
    days: int | None = Field(ge=0, le=3650, description="days after the basis (after `months`); null: no deadline")
    months: int = Field(default=0, ge=0, le=120)
    max_disputes: int = Field(default=2, ge=0, le=10, description="disputes allowed, the first included")


class CaseSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review_threshold: Amount = Field(description="cases of at least this amount start in needs_review")
    windows: dict[CaseType, WindowIn] = Field(default_factory=dict, description="per type; absent types use defaults")
    version: Annotated[int, Field(ge=0)] | SkipJsonSchema[None] = Field(
        default=None, description="the version you read (0 before the first change); stale → 409"
    )

    @field_validator("review_threshold")
    @classmethod
    def _non_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError("must be ≥ 0")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _no_null_version(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out instead")
        return value


class CaseSettingsOut(BaseModel):
    review_threshold: Amount
    windows: dict[CaseType, WindowIn] = Field(description="every type's effective window")
    version: int = Field(description="0 while the account uses the defaults")


# ---------------------------------------------------------------- dispute packet and predictions


class PacketLine(BaseModel):
    po_number: str | None
    item_sequence_number: str | None
    asin: str | None
    vendor_sku: str | None
    ordered_quantity: int | None
    acknowledged_quantity: int | None
    received_quantity: int | None
    invoiced_quantity: int | None
    disputed_quantity: int | None
    unit_cost: Amount | None
    disputed_amount: Amount | None


class PacketDocument(BaseModel):
    id: uuid.UUID
    source: str
    content_type: str
    sha256: str
    size_bytes: int
    file_name: str = Field(description="its name inside the ZIP")


class DisputePacket(BaseModel):
    case: CaseOut
    claim: str = Field(description="one paragraph to paste into the Vendor Central dispute")
    references: dict[str, str | None]
    quantities: dict[str, int | None] = Field(description="invoiced, received, disputed (shortages)")
    lines: list[PacketLine]
    evidence: list[EvidenceItem]
    missing_evidence: list[str]
    documents: list[PacketDocument]
    complete: bool = Field(description="true when nothing the dispute needs is missing")


class PredictedShortage(BaseModel):
    invoice_number: str
    po_number: str
    asin: str | None
    item_sequence_number: str | None
    invoiced_quantity: int
    received_quantity: int
    shortfall_quantity: int
    unit_cost: Amount | None
    predicted_amount: Amount | None
    currency: str | None
    receive_status: str | None
    last_received_at: UTCDateTime | None
    invoice_due_on: date | None
    has_case: bool = Field(description="a shortage case already exists for this invoice")


class PredictedShortageList(BaseModel):
    data: list[PredictedShortage]
    next_cursor: str | None
    has_more: bool
