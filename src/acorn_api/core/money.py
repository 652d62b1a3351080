"""Exact money: ``Decimal`` amounts as strings on the wire, always with an ISO 4217 currency."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

CURRENCY_CODES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)


def _check_currency(code: str) -> str:
    if code not in CURRENCY_CODES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


CurrencyCode = Annotated[
    str,
    Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$", examples=["USD"]),
    AfterValidator(_check_currency),
]


# Every money column is NUMERIC(20, 4): 16 digits before the point. A larger amount is refused where it
# enters (as a filter it would overflow the bound parameter: a 500 found by the deep fuzz profile).
AMOUNT_LIMIT = Decimal(10) ** 16


def _check_amount(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if abs(value) >= AMOUNT_LIMIT:
        raise ValueError("must be less than 10^16 in magnitude (at most 16 digits before the decimal point)")
    return value


Amount = Annotated[
    Decimal,
    AfterValidator(_check_amount),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["1234.50"]}),
]


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: CurrencyCode


def quantize(amount: Decimal, places: int = 2) -> Decimal:
    """Round half-up to ``places`` decimals: the one rounding rule unless a domain says otherwise."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
