"""Pure rules: the state machine, price and time parsing, the policy arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acorn_api.quotes.models import TRANSITIONS, InvalidTransition, QuoteStatus, next_status
from acorn_api.quotes.parsing import parse_instant, parse_price
from acorn_api.quotes.policy import Policy, assess, change_pct

S = QuoteStatus
LEGAL = {
    ("submit", S.draft): S.pending_approval,
    ("approve", S.pending_approval): S.approved,
    ("reject", S.pending_approval): S.rejected,
    ("withdraw", S.draft): S.withdrawn,
    ("withdraw", S.pending_approval): S.withdrawn,
    ("supersede", S.approved): S.superseded,
    ("expire", S.approved): S.expired,
}


@pytest.mark.parametrize(("action", "status"), [(a, s) for a in TRANSITIONS for s in QuoteStatus])
def test_state_machine_allows_exactly_the_documented_transitions(action: str, status: QuoteStatus):
    if (action, status) in LEGAL:
        assert next_status(action, status.value) is LEGAL[(action, status)]
    else:
        with pytest.raises(InvalidTransition):
            next_status(action, status.value)


def test_terminal_statuses_have_no_way_out():
    for status in (S.rejected, S.withdrawn, S.superseded, S.expired):
        assert not [a for a in TRANSITIONS if (a, status) in LEGAL]


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("999999999"), places=4))
def test_plain_decimals_round_trip(value: Decimal):
    assert parse_price(format(value, "f")) == value


@given(st.integers(min_value=1000, max_value=10**9), st.integers(min_value=0, max_value=99))
def test_thousands_separators_are_refused_with_a_hint(whole: int, cents: int):
    text = f"{whole:,}.{cents:02d}"
    with pytest.raises(ValueError, match="thousands separator"):
        parse_price(text)


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=99))
def test_decimal_commas_are_refused_with_a_hint(whole: int, frac: int):
    text = f"{whole},{frac}"
    with pytest.raises(ValueError, match=r"comma|thousands"):
        parse_price(text)


def test_european_format_is_refused_and_the_fix_is_shown():
    with pytest.raises(ValueError, match=r"decimal comma.*1234\.5"):
        parse_price("1.234,5")


@given(st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("1000"), places=5))
def test_more_than_four_places_are_refused(value: Decimal):
    text = format(value, "f")
    if Decimal(text) == Decimal(text).quantize(Decimal("0.0001")):
        return
    with pytest.raises(ValueError, match="4 decimal"):
        parse_price(text)


@pytest.mark.parametrize("text", ["0", "0.0000", "-1", "(5.00)", "", "1e3", "NaN", "Infinity", "12.", ".5", "1 000"])
def test_non_positive_or_odd_prices_are_refused(text: str):
    with pytest.raises(ValueError):
        parse_price(text)


def test_instants_need_an_offset_and_dates_mean_midnight_utc():
    assert parse_instant("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_instant("2026-03-01T10:00:00+02:00") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="offset"):
        parse_instant("2026-03-01T10:00:00")
    with pytest.raises(ValueError):
        parse_instant("01/03/2026")


def test_change_pct_is_relative_to_the_baseline():
    assert change_pct(Decimal("11"), Decimal("10")) == Decimal("10.0000")
    assert change_pct(Decimal("9"), Decimal("10")) == Decimal("10.0000")


def test_exactly_the_threshold_does_not_need_finance():
    verdict = assess(Policy(), Decimal("11"), Decimal("10"))
    assert not verdict.requires_finance
    assert assess(Policy(), Decimal("11.01"), Decimal("10")).requires_finance


def test_a_first_price_has_no_change_and_needs_no_finance():
    verdict = assess(Policy(), Decimal("1000"), None)
    assert (verdict.change_pct, verdict.requires_finance, verdict.over_cap) == (None, False, False)


def test_above_the_hard_cap_is_flagged():
    assert assess(Policy(), Decimal("16"), Decimal("10")).over_cap
