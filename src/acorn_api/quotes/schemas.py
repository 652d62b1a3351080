"""Request and response shapes of /v1/quotes, /v1/quote-policy and /v1/prices."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from acorn_api.core.money import Amount, CurrencyCode
from acorn_api.core.regions import MARKETPLACE_REGION, Marketplace, Region
from acorn_api.core.time import UTCDateTime
from acorn_api.quotes.models import QuoteStatus, ScopeType
from acorn_api.quotes.parsing import parse_price


def _price(value: Any) -> Any:
    if isinstance(value, str):
        return parse_price(value)
    if isinstance(value, Decimal):
        return parse_price(format(value, "f"))
    raise ValueError('must be a decimal string such as "12.50" (numbers are not accepted: no float on money)')


Price = Annotated[
    Decimal,
    BeforeValidator(_price),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]+(\.[0-9]{1,4})?$",
            "description": "a decimal string > 0 with at most 4 decimals; no thousands separators, no decimal comma",
            "examples": ["12.5000"],
        }
    ),
]
Version = Annotated[int, Field(ge=1, description="the version you read; stale → 409 `stale-version`")]
Reason = Annotated[str, Field(min_length=1, max_length=1000)]


class QuoteCreate(BaseModel):
    """A draft quote for one item and exactly one scope: a store, a marketplace, or a whole region."""

    model_config = ConfigDict(extra="forbid")

    item_id: uuid.UUID
    store_id: uuid.UUID | None = Field(default=None, description="price for one store")
    region: Region | None = Field(default=None, description="with `marketplace`, or alone for a region-wide quote")
    marketplace: Marketplace | None = None
    currency: CurrencyCode
    cost_price: Price
    list_price: Price | None = None
    min_order_quantity: int | None = Field(default=None, ge=1, le=10_000_000)
    effective_from: UTCDateTime
    effective_to: UTCDateTime | None = Field(default=None, description="exclusive end; null = until replaced")
    reason: Reason | None = None
    override_reason: Reason | None = Field(
        default=None, description="needed when the change exceeds the policy's hard cap"
    )

    @model_validator(mode="after")
    def _one_scope_and_a_period(self) -> QuoteCreate:
        check_scope(self.store_id, self.region, self.marketplace)
        check_period(self.effective_from, self.effective_to)
        return self


def check_scope(store_id: uuid.UUID | None, region: Region | None, marketplace: Marketplace | None) -> None:
    if store_id is not None and (region is not None or marketplace is not None):
        raise ValueError("give either store_id, or region (with an optional marketplace), not both")
    if store_id is None and region is None:
        if marketplace is not None:
            raise ValueError(f"region is required with a marketplace ({MARKETPLACE_REGION[marketplace].value})")
        raise ValueError("give either store_id, or region (with an optional marketplace)")
    if region is not None and marketplace is not None and MARKETPLACE_REGION[marketplace] != region:
        raise ValueError(
            f"marketplace {marketplace.value} is in region {MARKETPLACE_REGION[marketplace].value}, not {region.value}"
        )


def check_period(effective_from: datetime, effective_to: datetime | None) -> None:
    if effective_to is not None and effective_to <= effective_from:
        raise ValueError("effective_to must be after effective_from")


class QuoteUpdate(BaseModel):
    """Change a draft. Only the fields present change; ``version`` is required."""

    model_config = ConfigDict(extra="forbid")

    version: Version
    currency: CurrencyCode | SkipJsonSchema[None] = None
    cost_price: Price | SkipJsonSchema[None] = None
    list_price: Price | None = None
    min_order_quantity: int | None = Field(default=None, ge=1, le=10_000_000)
    effective_from: UTCDateTime | SkipJsonSchema[None] = None
    effective_to: UTCDateTime | None = None
    reason: Reason | None = None
    override_reason: Reason | None = None

    @field_validator("currency", "cost_price", "effective_from", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value


class QuoteAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version


class QuoteApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version
    acknowledge_conflicts: bool = Field(
        default=False, description="must be true to approve a quote that creates channel price conflicts"
    )


class QuoteReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version
    reason: Reason


class QuoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    item_id: uuid.UUID
    scope_type: ScopeType
    scope_key: str
    store_id: uuid.UUID | None
    region: Region | None
    marketplace: Marketplace | None
    currency: str
    cost_price: Amount
    list_price: Amount | None
    min_order_quantity: int | None
    effective_from: UTCDateTime
    effective_to: UTCDateTime | None
    reason: str | None
    override_reason: str | None
    status: QuoteStatus
    created_by: uuid.UUID | None
    submitted_by: uuid.UUID | None
    submitted_at: UTCDateTime | None
    decided_by: uuid.UUID | None
    decided_at: UTCDateTime | None
    decision_reason: str | None
    baseline_price: Amount | None = Field(description="the price this quote changes, when it was last checked")
    change_pct: Amount | None = Field(description="|cost_price − baseline| / baseline × 100")
    superseded_by_id: uuid.UUID | None
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class ConflictStore(BaseModel):
    store_id: uuid.UUID
    store_code: str
    cost_price: Amount
    source: ScopeType | Literal["this_quote"]
    quote_id: uuid.UUID | None


class PriceConflict(BaseModel):
    kind: Literal["price_spread"] = "price_spread"
    item_id: uuid.UUID
    marketplace: Marketplace
    currency: str
    min_price: Amount
    max_price: Amount
    spread_pct: Amount = Field(description="(max − min) / min × 100")
    stores: list[ConflictStore]


class OverlapConflict(BaseModel):
    kind: Literal["overlap"] = "overlap"
    item_id: uuid.UUID
    scope_key: str
    quote_ids: list[uuid.UUID]
    detail: str


class QuoteWithConflicts(QuoteOut):
    conflicts: list[PriceConflict] = Field(
        default_factory=list,
        description="channel price conflicts this quote would create once approved (a warning on submit)",
    )
    requires_finance_approval: bool = Field(
        default=False, description="the change exceeds the policy threshold: only a finance (or admin) role approves"
    )


class ConflictReport(BaseModel):
    at: UTCDateTime
    tolerance_pct: Amount
    price_conflicts: list[PriceConflict]
    overlaps: list[OverlapConflict] = Field(description="approved quotes of one scope whose periods overlap (legacy)")
    truncated: bool = Field(description="true when more price conflicts exist than `limit`")


class QuoteEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    quote_id: uuid.UUID
    action: str
    from_status: QuoteStatus | None
    to_status: QuoteStatus
    actor_id: uuid.UUID | None
    actor_role: str | None
    reason: str | None
    version: int
    details: dict[str, Any]
    created_at: UTCDateTime


class QuoteEventList(BaseModel):
    data: list[QuoteEventOut] = Field(description="the quote's timeline, oldest first")


PolicyPct = Annotated[
    Decimal,
    Field(ge=0, le=1000, max_digits=7, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]{1,4}(\.[0-9]{1,2})?$"},
                {"type": "integer", "minimum": 0, "maximum": 1000},
            ],
            "description": "a percentage, 0-1000, at most 2 decimals, as a decimal string or an integer",
            "examples": ["10", "12.5"],
        }
    ),
]


class QuotePolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    finance_threshold_pct: Annotated[PolicyPct, BeforeValidator(lambda v: _pct(v))] = Decimal("10")
    hard_cap_pct: Annotated[PolicyPct, BeforeValidator(lambda v: _pct(v))] = Decimal("50")
    conflict_tolerance_pct: Annotated[PolicyPct, BeforeValidator(lambda v: _pct(v))] = Decimal("5")
    version: int | None = Field(
        default=None, ge=0, description="the version you read (0 while on the defaults); stale → 409"
    )

    @model_validator(mode="after")
    def _cap_above_threshold(self) -> QuotePolicyIn:
        if self.hard_cap_pct < self.finance_threshold_pct:
            raise ValueError("hard_cap_pct must be at least finance_threshold_pct")
        return self


def _pct(value: Any) -> Any:
    if isinstance(value, bool | float):
        raise ValueError('must be a decimal string or an integer, e.g. "12.5"')
    return value


class QuotePolicyOut(BaseModel):
    finance_threshold_pct: Amount = Field(description="a change above this % needs a finance (or admin) approver")
    hard_cap_pct: Amount = Field(description="a change above this % is refused unless the quote has override_reason")
    conflict_tolerance_pct: Amount = Field(description="stores of one marketplace may differ by this % at most")
    version: int = Field(description="0 while the account uses the defaults")
    is_default: bool


class EffectivePrice(BaseModel):
    item_id: uuid.UUID
    asin: str
    store_id: uuid.UUID
    at: UTCDateTime
    cost_price: Amount
    currency: str
    list_price: Amount | None
    min_order_quantity: int | None
    source: ScopeType = Field(description="which scope supplied the price: store, marketplace or region")
    quote_id: uuid.UUID
    effective_from: UTCDateTime
    effective_to: UTCDateTime | None


class PricePeriod(BaseModel):
    quote_id: uuid.UUID
    cost_price: Amount
    list_price: Amount | None
    effective_from: UTCDateTime
    effective_to: UTCDateTime | None
    status: QuoteStatus
    approved_by: uuid.UUID | None
    approved_at: UTCDateTime | None


class ScopeHistory(BaseModel):
    scope_type: ScopeType
    scope_key: str
    store_id: uuid.UUID | None
    region: Region | None
    marketplace: Marketplace | None
    currency: str
    periods: list[PricePeriod]


class PriceHistory(BaseModel):
    item_id: uuid.UUID
    scopes: list[ScopeHistory]


class ImportRowError(BaseModel):
    row: int = Field(description="line number in the file; the header is row 1")
    column: str | None
    reason: str


class ImportResult(BaseModel):
    import_id: uuid.UUID
    rows: int
    created: int
    quote_ids: list[uuid.UUID]
