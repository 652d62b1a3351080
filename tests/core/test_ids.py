"""Time-ordered ids: Python's uuid7() and the database's acorn_uuid7() give the same RFC 9562 layout."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.ids import uuid7, uuid7_from


def milliseconds_of(value: uuid.UUID) -> int:
    return value.int >> 80


@given(st.integers(min_value=0, max_value=2**48 - 1), st.integers(min_value=0, max_value=2**80 - 1))
def test_uuid7_from_keeps_the_time_and_sets_version_and_variant(milliseconds: int, random_bits: int) -> None:
    value = uuid7_from(milliseconds, random_bits)
    assert (value.version, value.variant) == (7, uuid.RFC_4122)
    assert milliseconds_of(value) == milliseconds


@given(
    st.integers(min_value=0, max_value=2**48 - 2),
    st.integers(min_value=0, max_value=2**80 - 1),
    st.integers(min_value=0, max_value=2**80 - 1),
)
def test_a_later_millisecond_always_sorts_after(milliseconds: int, a: int, b: int) -> None:
    assert uuid7_from(milliseconds, a) < uuid7_from(milliseconds + 1, b)


def test_uuid7_is_now_and_unique() -> None:
    before = time.time_ns() // 1_000_000
    values = [uuid7() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(values)) == 1000
    assert all(v.version == 7 and before <= milliseconds_of(v) <= after for v in values)


async def test_the_database_function_gives_the_same_layout(session: AsyncSession) -> None:
    before = time.time_ns() // 1_000_000
    rows = (await session.execute(text("SELECT acorn_uuid7() FROM generate_series(1, 500)"))).scalars().all()
    after = time.time_ns() // 1_000_000
    values = [uuid.UUID(str(v)) for v in rows]
    assert len(set(values)) == 500
    assert {(v.version, v.variant) for v in values} == {(7, uuid.RFC_4122)}
    # the server's clock is this machine's; allow a little for rounding
    assert all(before - 5 <= milliseconds_of(v) <= after + 5 for v in values)
