"""Token-bucket rate limiter stored in Redis, shared by every worker process.

One Lua script does refill + (optional) rate change + take atomically, using the Redis server clock
(``TIME``) so that all workers agree on "now" regardless of their local clocks.  A caller that cannot
take a token is told how long to wait and sleeps (``asyncio.sleep``) before trying again: nothing is
reserved ahead of time, so a cancelled waiter never leaks capacity and the bucket never over-admits.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class RatePlan:
    rate: float
    """Sustained requests per second."""
    burst: int
    """Bucket capacity."""


_VENDOR = RatePlan(10.0, 10)

#: Default usage plans, from the "Usage Plan" tables of the official models.
DEFAULT_PLANS: dict[str, RatePlan] = {
    # vendorOrders
    "getPurchaseOrders": _VENDOR,
    "getPurchaseOrder": _VENDOR,
    "submitAcknowledgement": _VENDOR,
    "getPurchaseOrdersStatus": _VENDOR,
    # vendorShipments
    "SubmitShipmentConfirmations": _VENDOR,
    "SubmitShipments": _VENDOR,
    "GetShipmentDetails": _VENDOR,
    "GetShipmentLabels": _VENDOR,
    # vendorInvoices
    "submitInvoices": _VENDOR,
    # vendorTransactionStatus
    "getTransaction": RatePlan(10.0, 20),
    # reports 2021-06-30
    "getReports": RatePlan(0.0222, 10),
    "createReport": RatePlan(0.0167, 15),
    "cancelReport": RatePlan(0.0222, 10),
    "getReport": RatePlan(2.0, 15),
    "getReportDocument": RatePlan(0.0167, 15),
}

#: Used for an operation without a known plan: conservative.
FALLBACK_PLAN = RatePlan(1.0, 1)

#: A rate adopted from ``x-amzn-RateLimit-Limit`` stays between a hundredth and ten times the documented plan,
#: and within the absolute bounds below, so a hostile or broken server can neither park a worker (a rate near
#: zero makes every wait endless) nor make it hammer anything (a huge rate). Every wait for a token is capped
#: as well (``SpApiClient(max_rate_wait=...)``, ``ACORN_SPAPI_MAX_RATE_LIMIT_WAIT_SECONDS``).
MIN_RATE_FACTOR = 0.01
MAX_RATE_FACTOR = 10.0
MIN_ADOPTED_RATE = 0.001  # one request per 1000 s
MAX_ADOPTED_RATE = 100.0


def clamp_rate(plan: RatePlan, rate: float) -> float:
    """The rate to adopt when the server says ``rate``: near the plan and within the absolute bounds."""
    low = max(plan.rate * MIN_RATE_FACTOR, MIN_ADOPTED_RATE)
    high = max(min(plan.rate * MAX_RATE_FACTOR, MAX_ADOPTED_RATE), low)
    return min(max(rate, low), high)


# KEYS[1] bucket hash (fields: tokens, ts, rate)
# ARGV[1] default rate, ARGV[2] burst, ARGV[3] tokens wanted (0 = only update rate),
# ARGV[4] new rate ("" = keep), ARGV[5] key TTL in ms
# returns the seconds to wait as a string ("0" = token taken)
_LUA_TAKE = """
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
local rate = tonumber(data[3]) or tonumber(ARGV[1])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
if ARGV[4] ~= '' then
  rate = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'rate', ARGV[4])
end
local wait = 0
if wanted > 0 then
  if tokens >= wanted then
    tokens = tokens - wanted
  else
    wait = (wanted - tokens) / rate
  end
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return string.format('%.17g', wait)
"""


class RedisTokenBucket:
    """Token bucket per ``(bucket_key, operation)`` shared through Redis.

    ``bucket_key`` is what Amazon's usage plan is attached to (a selling-partner / connection id).
    """

    def __init__(
        self,
        redis: Redis,
        bucket_key: str,
        *,
        plans: Mapping[str, RatePlan] | None = None,
        key_prefix: str = "acorn:spapi:ratelimit",
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._bucket_key = bucket_key
        self._plans: dict[str, RatePlan] = dict(DEFAULT_PLANS if plans is None else plans)
        self._prefix = key_prefix
        self._sleep = sleep
        self._script = redis.register_script(_LUA_TAKE)
        self._known_rates: dict[str, float] = {}

    def plan(self, operation: str) -> RatePlan:
        return self._plans.get(operation, FALLBACK_PLAN)

    def current_rate(self, operation: str) -> float:
        """The rate this instance last saw for ``operation`` (header-adapted or default)."""
        return self._known_rates.get(operation, self.plan(operation).rate)

    def redis_key(self, operation: str) -> str:
        return f"{self._prefix}:{self._bucket_key}:{operation}"

    async def _run(self, operation: str, wanted: int, new_rate: float | None) -> float:
        plan = self.plan(operation)
        rate = new_rate if new_rate is not None else self.current_rate(operation)
        # keep state at least as long as a full refill takes, plus a minute
        ttl_ms = math.ceil(plan.burst / min(rate, plan.rate) * 1000) + 60_000
        result = await self._script(
            keys=[self.redis_key(operation)],
            args=[
                repr(plan.rate),
                plan.burst,
                wanted,
                "" if new_rate is None else repr(new_rate),
                ttl_ms,
            ],
        )
        if isinstance(result, bytes):
            result = result.decode()
        return float(cast(str, result))

    async def try_acquire(self, operation: str) -> float:
        """Take one token if available; returns 0.0 on success, else the seconds until one should be."""
        return await self._run(operation, 1, None)

    async def acquire(self, operation: str, *, max_wait: float | None = None) -> float:
        """Wait until a token for ``operation`` is taken; returns the total seconds waited.

        Raises ``TimeoutError`` if ``max_wait`` would be exceeded.
        """
        waited = 0.0
        while True:
            wait = await self.try_acquire(operation)
            if wait <= 0:
                return waited
            if max_wait is not None and waited + wait > max_wait:
                raise TimeoutError(f"rate limit wait for {operation} would exceed {max_wait}s")
            # a hair extra so the refill has really happened when we come back
            wait += 0.001
            await self._sleep(wait)
            waited += wait

    async def update_rate(self, operation: str, rate: float) -> None:
        """Adopt the rate Amazon reports (``x-amzn-RateLimit-Limit``) for this bucket, for all workers.

        The rate is clamped (:func:`clamp_rate`); a non-finite or non-positive value is ignored.
        """
        if rate <= 0 or not math.isfinite(rate):
            return
        rate = clamp_rate(self.plan(operation), rate)
        if self._known_rates.get(operation) == rate:
            return
        await self._run(operation, 0, rate)
        self._known_rates[operation] = rate

    async def observe_rate_header(self, operation: str, header_value: str | None) -> None:
        """Parse an ``x-amzn-RateLimit-Limit`` header value and adapt if it differs from what we use."""
        if not header_value:
            return
        try:
            rate = float(header_value.strip()[:32])
        except ValueError:
            return
        if rate <= 0 or not math.isfinite(rate):
            return
        rate = clamp_rate(self.plan(operation), rate)
        if rate != self.current_rate(operation):
            await self.update_rate(operation, rate)
        else:
            self._known_rates[operation] = rate

    async def reset(self, operation: str) -> None:
        await self._redis.delete(self.redis_key(operation))
        self._known_rates.pop(operation, None)
