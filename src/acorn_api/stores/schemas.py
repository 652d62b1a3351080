"""Request and response shapes of /v1/stores."""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import available_timezones

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from acorn_api.core.money import CurrencyCode
from acorn_api.core.regions import MARKETPLACE_REGION, Marketplace, Region
from acorn_api.core.time import UTCDateTime

_TIMEZONES = frozenset(available_timezones())
MAX_METADATA_BYTES = 4096


class StoreStatus(StrEnum):
    active = "active"
    archived = "archived"


def _check_country(code: str) -> str:
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _check_timezone(name: str) -> str:
    if name not in _TIMEZONES:
        raise ValueError(f"{name!r} is not an IANA time zone, e.g. America/New_York")
    return name


def _check_vendor_codes(codes: list[str]) -> list[str]:
    if len(set(codes)) != len(codes):
        raise ValueError("vendor codes must not repeat")
    return codes


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    # stdlib json, not orjson: metadata may hold integers beyond 64 bits, which JSON (and JSONB) allow.
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


StoreCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
StoreName = Annotated[str, Field(min_length=1, max_length=200)]
CountryCode = Annotated[
    str, Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$", examples=["US"]), AfterValidator(_check_country)
]
TimeZone = Annotated[
    str, Field(min_length=1, max_length=64, examples=["America/New_York"]), AfterValidator(_check_timezone)
]
VendorCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
VendorCodes = Annotated[list[VendorCode], Field(max_length=100), AfterValidator(_check_vendor_codes)]
Metadata = Annotated[
    dict[str, Any],
    Field(max_length=50, description="free-form, at most 50 keys and 4 KiB"),
    AfterValidator(_check_metadata),
]


def check_region_marketplace(region: Region | None, marketplace: Marketplace | None) -> None:
    if region is not None and marketplace is not None and MARKETPLACE_REGION[marketplace] != region:
        raise ValueError(
            f"marketplace {marketplace.value} is in region {MARKETPLACE_REGION[marketplace].value}, not {region.value}"
        )


class StoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: StoreCode
    name: StoreName
    region: Region
    marketplace: Marketplace
    country: CountryCode
    currency: CurrencyCode
    timezone: TimeZone
    vendor_codes: VendorCodes = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("marketplace")
    @classmethod
    def _marketplace_in_region(cls, marketplace: Marketplace, info: ValidationInfo) -> Marketplace:
        check_region_marketplace(info.data.get("region"), marketplace)
        return marketplace


class StoreUpdate(BaseModel):
    """Only the fields present change. ``version`` (or ``If-Match``) guards against lost updates."""

    model_config = ConfigDict(extra="forbid")

    code: StoreCode | SkipJsonSchema[None] = None
    name: StoreName | SkipJsonSchema[None] = None
    region: Region | SkipJsonSchema[None] = None
    marketplace: Marketplace | SkipJsonSchema[None] = None
    country: CountryCode | SkipJsonSchema[None] = None
    currency: CurrencyCode | SkipJsonSchema[None] = None
    timezone: TimeZone | SkipJsonSchema[None] = None
    vendor_codes: VendorCodes | SkipJsonSchema[None] = None
    status: StoreStatus | SkipJsonSchema[None] = None
    metadata: Metadata | SkipJsonSchema[None] = None
    version: int | SkipJsonSchema[None] = Field(default=None, ge=1, description="the version you read; stale → 409")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value

    @field_validator("marketplace")
    @classmethod
    def _marketplace_in_region(cls, marketplace: Marketplace, info: ValidationInfo) -> Marketplace:
        check_region_marketplace(info.data.get("region"), marketplace)
        return marketplace


class StoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    region: Region
    marketplace: Marketplace
    country: str
    currency: str
    timezone: str
    vendor_codes: list[str]
    status: StoreStatus
    metadata: dict[str, Any] = Field(validation_alias="metadata_")
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class StoreDeleted(BaseModel):
    id: uuid.UUID
    deleted: bool = Field(description="true when the store was removed; false when it was archived instead")
    store: StoreOut | None = Field(description="the archived store, when other data still refers to it")
