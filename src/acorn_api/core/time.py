"""UTC everywhere: aware datetimes in, RFC 3339 with ``Z`` out."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator


def utcnow() -> datetime:
    return datetime.now(UTC)


def _require_aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a time zone offset (RFC 3339), e.g. 2026-01-31T12:00:00Z")
    return value.astimezone(UTC)


# any number pydantic would take for epoch seconds, exponent notation included (``-5.7e-69``: found by fuzzing)
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _refuse_epoch_numbers(value: object) -> object:
    """Pydantic would read ``0.5`` as seconds since 1970; the contract says RFC 3339 strings only."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTCDateTime = Annotated[
    datetime,
    BeforeValidator(_refuse_epoch_numbers),
    # Every value is normalised to UTC here, so pydantic's own (Rust) JSON serializer writes RFC 3339 with ``Z``,
    # exactly what :func:`rfc3339` writes, without a Python call per field and row.
    AfterValidator(_require_aware_utc),
]
