"""UTC everywhere: aware datetimes in, RFC 3339 with ``Z`` out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def utcnow() -> datetime:
    return datetime.now(UTC)


def _require_aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a time zone offset (RFC 3339), e.g. 2026-01-31T12:00:00Z")
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTCDateTime = Annotated[
    datetime,
    AfterValidator(_require_aware_utc),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]
