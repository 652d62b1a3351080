"""Parsing and validation of SP-API request parameters, with Amazon's error envelope."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_RANGE = timedelta(days=7)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})?$")


def error_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": details}]}


class ApiError(Exception):
    """Turned into an SP-API error response by the dispatcher."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(details or message)
        self.status = status
        self.body = error_body(code, message, details)


def bad_request(details: str) -> ApiError:
    return ApiError(400, "InvalidInput", "Request has missing or invalid parameters and cannot be parsed.", details)


def not_found(details: str) -> ApiError:
    return ApiError(404, "NotFound", "The resource specified does not exist.", details)


def parse_datetime(value: str, name: str) -> datetime:
    if not _DATE_TIME.match(value):
        raise bad_request(f"{name} must be an ISO-8601 date-time, got {value!r}")
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a decimal string")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise bad_request(f"{name} must be a decimal string, got {value!r}") from exc
    if not amount.is_finite():
        raise bad_request(f"{name} must be a finite decimal")
    return amount


class Query:
    """Typed access to query parameters; the last value wins for repeated names."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def text(self, name: str) -> str | None:
        value = self._values.get(name)
        return value if value not in (None, "") else None

    def integer(self, name: str, minimum: int, maximum: int, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        if not re.fullmatch(r"[+-]?\d+", raw) or not minimum <= int(raw) <= maximum:
            raise bad_request(f"{name} must be an integer between {minimum} and {maximum}")
        return int(raw)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise bad_request(f"{name} must be true or false")
        return raw.lower() == "true"

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is not None and raw not in allowed:
            raise bad_request(f"{name} must be one of {', '.join(allowed)}")
        return raw

    def datetime(self, name: str) -> datetime | None:
        raw = self.text(name)
        return None if raw is None else parse_datetime(raw, name)


def checked_range(
    after: datetime | None, before: datetime | None, names: tuple[str, str], now: datetime
) -> tuple[datetime, datetime]:
    """Applies the documented 7-day maximum; a missing bound defaults relative to the other one."""
    if before is None:
        before = now if after is None else min(now, after + MAX_RANGE)
    if after is None:
        after = before - MAX_RANGE
    if after > before:
        raise bad_request(f"{names[0]} must be earlier than {names[1]}")
    if before - after > MAX_RANGE:
        raise bad_request(f"The date range between {names[0]} and {names[1]} must not exceed 7 days")
    return after, before


def encode_token(kind: str, filters: Mapping[str, str], cursor: tuple[datetime, str]) -> str:
    raw = json.dumps({"k": kind, "f": dict(sorted(filters.items())), "c": [cursor[0].isoformat(), cursor[1]]})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_token(token: str, kind: str) -> tuple[dict[str, str], tuple[datetime, str]]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["k"] != kind:
            raise ValueError(kind)
        filters = {str(key): str(value) for key, value in decoded["f"].items()}
        cursor = (datetime.fromisoformat(decoded["c"][0]), str(decoded["c"][1]))
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error, UnicodeDecodeError) as exc:
        raise bad_request("The nextToken is invalid or expired.") from exc
    return filters, cursor
