"""Amounts, dates and document classification: property tests over the formats Vendor Central files use."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acorn_api.ledger.models import EntryType
from acorn_api.ledger.parsing import DateDetector, FileProblem, ValueProblem, detect_encoding, parse_amount
from acorn_api.ledger.reports import Cells, RowContext, RowProblem, classify
from tests.ledger.files import DATE_WRITERS, eu_amount, us_amount

money = st.decimals(min_value=Decimal("-999999999.99"), max_value=Decimal("999999999.99"), places=2)


@given(money, st.sampled_from(["", "$", "€", "£", "¥", "₹"]))
def test_us_style_amounts_read_back_exactly(value: Decimal, symbol: str) -> None:
    parsed = parse_amount(us_amount(value, symbol))
    assert parsed.value == value
    assert type(parsed.value) is Decimal


@given(money)
def test_european_style_amounts_read_back_exactly(value: Decimal) -> None:
    assert parse_amount(eu_amount(value)).value == value


@given(money)
def test_plain_and_signed_amounts(value: Decimal) -> None:
    assert parse_amount(str(value)).value == value
    assert parse_amount(f"{value} USD").currency == "USD"


@given(st.integers(min_value=0, max_value=10**12))
def test_indian_grouping(value: int) -> None:
    digits = str(value)
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    text = ",".join([*groups, tail]) + ".50"
    assert parse_amount("₹" + text).value == Decimal(value) + Decimal("0.50")


def _cell_amount(text: str) -> tuple[Decimal | None, str | None] | str:
    cells = Cells({"amount": text}, RowContext(dates=DateDetector(), default_currency=None, extras=[]), clean=True)
    try:
        return cells.amount("amount")
    except RowProblem as problem:
        return problem.reason


def _reference_amount(text: str) -> tuple[Decimal, str | None] | str:
    """What a cell reads as through ``parse_amount`` alone (the rules before the fast paths)."""
    try:
        parsed = parse_amount(text)
    except ValueProblem as problem:
        return str(problem)
    if abs(parsed.value) >= Decimal("1e16") or parsed.value != parsed.value.quantize(Decimal("0.0001")):
        return "out of range or more than 4 decimals"
    return parsed.value, parsed.currency


amount_texts = st.one_of(
    st.decimals(min_value=Decimal("-1e17"), max_value=Decimal("1e17"), allow_nan=False, places=5).map(str),
    st.decimals(min_value=Decimal("-1e17"), max_value=Decimal("1e17"), allow_nan=False, places=2).map(us_amount),
    st.from_regex(r"-?[0-9]{1,18}(\.[0-9]{0,6})?|-?[0-9]{1,4}(,[0-9]{1,4}){0,5}(\.[0-9]{1,5})?", fullmatch=True),
)


@settings(max_examples=300)
@given(amount_texts)
def test_the_fast_amount_paths_read_what_parse_amount_reads(text: str) -> None:
    assert _cell_amount(text) == _reference_amount(text)


@pytest.mark.parametrize("text", ["", "abc", "1,2,3", "12..5", "--", "1.2.3,4,5", "NaN", "Infinity", "(", "$"])
def test_not_amounts(text: str) -> None:
    with pytest.raises(ValueProblem):
        parse_amount(text)


def test_amount_examples() -> None:
    assert parse_amount("(1,234.56)").value == Decimal("-1234.56")
    assert parse_amount("1.234,56 €").value == Decimal("1234.56")
    assert parse_amount("1.234,56 €").currency == "EUR"
    assert parse_amount("12,5").value == Decimal("12.5")
    assert parse_amount("1,234").value == Decimal("1234")
    assert parse_amount("1 234,56").value == Decimal("1234.56")
    assert parse_amount("-$5.00").value == Decimal("-5.00")
    assert parse_amount("5.00-").value == Decimal("-5.00")


dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))


@given(st.lists(dates, min_size=1, max_size=30), st.sampled_from(sorted(DATE_WRITERS)))
def test_a_file_of_dates_is_read_in_its_format_or_reported_ambiguous(values: list[date], fmt: str) -> None:
    detector = DateDetector()
    for d in values:
        assert detector.check(DATE_WRITERS[fmt](d))
    ambiguous = (
        fmt in ("dd/MM/yyyy", "MM/dd/yyyy")
        and all(d.day <= 12 for d in values)
        and any(d.day != d.month for d in values)
    )
    if ambiguous:
        with pytest.raises(FileProblem) as problem:
            detector.decide()
        assert problem.value.code == "ambiguous_dates"
        return
    decided = detector.decide()
    if fmt in ("dd/MM/yyyy", "MM/dd/yyyy") and all(d.day == d.month for d in values):
        assert decided in ("dd/MM/yyyy", "MM/dd/yyyy")  # either reads the same dates
    else:
        assert decided == fmt
    assert decided is not None
    read = dict(detector.mapping(decided))
    assert [read[DATE_WRITERS[fmt](d)] for d in values] == values


@given(dates)
def test_a_forced_format_settles_ambiguity(d: date) -> None:
    detector = DateDetector(forced="dd/MM/yyyy")
    text = d.strftime("%d/%m/%Y")
    assert detector.check(text)
    assert dict(detector.mapping(detector.decide() or ""))[text] == d


@pytest.mark.parametrize(
    ("document", "description", "expected", "base"),
    [
        ("1234567", None, EntryType.invoice, None),
        ("1234567SC", None, EntryType.shortage_claim, "1234567"),
        ("1234567SCR", "Shortage claim reversal", EntryType.shortage_reversal, "1234567"),
        ("1234567PC", None, EntryType.price_claim, "1234567"),
        ("1234567PCR", None, EntryType.price_claim_reversal, "1234567"),
        ("INV-99", "Price variance", EntryType.price_claim, None),
        ("12345678VCBSINV", None, EntryType.chargeback, None),
        ("ABCD-12345678", None, EntryType.coop, None),
        ("X1", "COOP accrual", EntryType.coop, None),
        ("P-1", "PROVISION FOR RECEIVABLES", EntryType.provision, None),
        ("P-1R", "Reversal of PROVISION FOR RECEIVABLES", EntryType.provision_reversal, None),
        ("IPAPUS-1", None, EntryType.price_protection, None),
        ("ReturnID_55", None, EntryType.return_, None),
        ("R-9", "Product returns", EntryType.return_, None),
    ],
)
def test_remittance_documents_are_classified(
    document: str, description: str | None, expected: EntryType, base: str | None
) -> None:
    assert classify(document, description) == (expected, base)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"Invoice,Amount\nA,1\n", "utf-8"),
        ("Invoice,Amount\nA,1\n".encode("utf-8-sig"), "utf-8-sig"),
        ("Invoice,Amount\nÄ,1\n".encode("utf-16"), "utf-16"),
        ("Invoice,Amount\nÄ,1 €\n".encode("cp1252"), "cp1252"),
    ],
)
def test_encodings_are_detected(content: bytes, expected: str) -> None:
    assert detect_encoding(io.BytesIO(content)) == expected
