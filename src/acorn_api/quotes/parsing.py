"""Strict parsing of prices and instants, shared by the JSON API and CSV imports.

Prices are plain decimal strings: digits, optionally a dot and 1-4 decimals (``1234.5``). Thousands
separators (``1,234.5``) and decimal commas (``1234,5`` or ``1.234,5``) are refused with a message that
says so: guessing between ``1,234`` (one thousand) and ``1,234`` (one point two) is how prices go wrong.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal

PRICE_RE = re.compile(r"^[0-9]+(\.[0-9]{1,4})?$")
MAX_PRICE = Decimal("9999999999999999.9999")  # NUMERIC(20, 4)


def parse_price(raw: str) -> Decimal:
    """A positive price with at most 4 decimals, or ``ValueError`` with a message a person can act on."""
    text = raw.strip()
    if not text:
        raise ValueError("is empty; write a price such as 12.50")
    if PRICE_RE.match(text):
        value = Decimal(text)
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value > MAX_PRICE:
            raise ValueError("is too large")
        return value
    if "," in text:
        if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", text):
            raise ValueError(f"{text!r} uses a thousands separator; write it without one, e.g. {text.replace(',', '')}")
        raise ValueError(f"{text!r} uses a decimal comma; use a dot, e.g. {_dotted(text)}")
    if text.startswith(("-", "(")):
        raise ValueError("must be greater than 0")
    if re.fullmatch(r"[0-9]+\.[0-9]{5,}", text):
        raise ValueError("has more than 4 decimal places")
    raise ValueError(f"{text!r} is not a plain decimal number such as 1234.5")


def _dotted(text: str) -> str:
    return text.replace(".", "").replace(",", ".")


def parse_instant(raw: str) -> datetime:
    """RFC 3339 with an offset (``2026-01-31T00:00:00Z``), or a date ``YYYY-MM-DD`` meaning 00:00 UTC."""
    text = raw.strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a calendar date") from exc
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an RFC 3339 time (2026-01-31T00:00:00Z) or a date (2026-01-31)") from exc
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset; add Z for UTC")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is out of range") from exc
