"""Request and response shapes of /v1/items."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from acorn_api.core.time import UTCDateTime

ASIN_RE = re.compile(r"^(B0[0-9A-Z]{8}|[0-9]{9}[0-9X])$")


class ItemStatus(StrEnum):
    active = "active"
    discontinued = "discontinued"


class UnitOfMeasure(StrEnum):
    eaches = "Eaches"
    cases = "Cases"


def gtin_check_digit_ok(code: str) -> bool:
    """GS1 mod-10: weights 3,1,3,... from the right, excluding the check digit."""
    if not code.isdigit() or not code.isascii():
        return False
    body, check = code[:-1], int(code[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _upper_strip(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _check_asin(value: str) -> str:
    if not ASIN_RE.match(value):
        raise ValueError("an ASIN is 10 characters: B0 and 8 letters or digits (e.g. B07XJ8C8F5), or an ISBN-10")
    return value


def _gtin(length: int, name: str) -> Any:
    def check(value: str) -> str:
        if len(value) != length or not value.isdigit():
            raise ValueError(f"{name} has exactly {length} digits")
        if not gtin_check_digit_ok(value):
            raise ValueError(f"{name} check digit is wrong (GS1 mod-10)")
        return value

    return check


Asin = Annotated[
    str, BeforeValidator(_upper_strip), Field(max_length=10, examples=["B07XJ8C8F5"]), AfterValidator(_check_asin)
]
VendorSku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
Ean = Annotated[
    str, Field(max_length=13, pattern=r"^[0-9]{13}$", examples=["4006381333931"]), AfterValidator(_gtin(13, "EAN-13"))
]
Upc = Annotated[
    str, Field(max_length=12, pattern=r"^[0-9]{12}$", examples=["036000291452"]), AfterValidator(_gtin(12, "UPC-A"))
]
Title = Annotated[str, Field(min_length=1, max_length=500)]
Brand = Annotated[str, Field(min_length=1, max_length=200)]
CaseSize = Annotated[int, Field(ge=1, le=100000)]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asin: Asin
    vendor_sku: VendorSku
    ean: Ean | None = None
    upc: Upc | None = None
    title: Title
    brand: Brand | None = None
    unit_of_measure: UnitOfMeasure = UnitOfMeasure.eaches
    case_size: CaseSize | None = Field(default=None, description="units per case; required for `Cases`")
    status: ItemStatus = ItemStatus.active

    @model_validator(mode="after")
    def _case_size_matches_unit(self) -> ItemCreate:
        check_case_size(self.unit_of_measure, self.case_size)
        return self


def check_case_size(unit: UnitOfMeasure, case_size: int | None) -> None:
    if unit is UnitOfMeasure.cases and case_size is None:
        raise ValueError("case_size is required when unit_of_measure is Cases")
    if unit is UnitOfMeasure.eaches and case_size is not None:
        raise ValueError("case_size is only allowed when unit_of_measure is Cases")


class ItemUpdate(BaseModel):
    """Only the fields present change; ``ean``, ``upc``, ``brand`` and ``case_size`` may be set to null."""

    model_config = ConfigDict(extra="forbid")

    asin: Asin | SkipJsonSchema[None] = None
    vendor_sku: VendorSku | SkipJsonSchema[None] = None
    ean: Ean | None = None
    upc: Upc | None = None
    title: Title | SkipJsonSchema[None] = None
    brand: Brand | None = None
    unit_of_measure: UnitOfMeasure | SkipJsonSchema[None] = None
    case_size: CaseSize | None = None
    status: ItemStatus | SkipJsonSchema[None] = None
    version: int | SkipJsonSchema[None] = Field(default=None, ge=1, description="the version you read; stale → 409")

    @field_validator("asin", "vendor_sku", "title", "unit_of_measure", "status", "version", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    asin: str
    vendor_sku: str
    ean: str | None
    upc: str | None
    title: str
    brand: str | None
    unit_of_measure: UnitOfMeasure
    case_size: int | None
    status: ItemStatus
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime
