"""Token buckets implementing Amazon's per-operation usage plans."""

from __future__ import annotations

import time
from collections.abc import Callable

# A client pacing at exactly `rate` must never be throttled; the tolerance absorbs clock jitter
# between the client's and the simulator's measurement of the same interval.
TOKEN_TOLERANCE = 0.02


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def try_acquire(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0 - TOKEN_TOLERANCE:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per operation: the simulator models a single selling-partner/application pair."""

    def __init__(self, limits: Callable[[str], tuple[float, int]], clock: Callable[[], float] = time.monotonic):
        self._limits = limits
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def try_acquire(self, operation: str) -> bool:
        bucket = self._buckets.get(operation)
        if bucket is None:
            rate, burst = self._limits(operation)
            bucket = self._buckets[operation] = TokenBucket(rate, burst, self._clock)
        return bucket.try_acquire()

    def reset(self) -> None:
        self._buckets.clear()
