"""Time-ordered ids (RFC 9562 version 7) for rows that many indexes key on, such as ledger entries.

Random (version 4) ids put each new row on a random leaf of every index keyed by it; version 7 ids begin with
the time in milliseconds, so rows written together sit together at the right edge. The SQL twin for rows
written in bulk is ``acorn_uuid7()`` (migration 0012); both give the same layout.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def uuid7() -> uuid.UUID:
    """48 bits of Unix time in ms, then 74 random bits around the version (7) and the RFC variant."""
    return uuid7_from(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def uuid7_from(milliseconds: int, random_bits: int) -> uuid.UUID:
    """The version 7 id of a given time and 80 given bits (6 of them overwritten): for deterministic generators."""
    value = (milliseconds & 0xFFFF_FFFF_FFFF) << 80 | (random_bits & ((1 << 80) - 1))
    return uuid.UUID(int=(value & _CLEAR) | _VERSION_7 | _VARIANT_RFC)
