"""Token-bucket rate limits in Redis: one atomic Lua call (one round trip) per request.

Each bucket holds ``per_minute`` tokens and refills at ``per_minute / 60`` tokens a second, so a client may
burst one minute's quota and then go at the steady rate. Several buckets (e.g. per client id *and* per
source address) are checked and charged together: the request passes only if every bucket has a token, and
then each loses one. Time comes from the Redis server (``TIME``), so API processes with skewed clocks share
one view. Keys expire once a bucket would be full again, so idle clients cost no memory.

If Redis cannot be reached the request is let through (logged): an outage of the limiter should not be an
outage of the API.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# KEYS: bucket keys. ARGV: the per-minute capacity of each bucket, in the same order, then the cost (tokens to
# take when every bucket has at least one; 0 only checks). Returns {allowed, limit, remaining, reset_ms, retry_ms}
# for the tightest bucket.
BUCKET_SCRIPT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local cost = tonumber(ARGV[n + 1] or '1')
local tokens = {}
local allowed = 1
for i = 1, n do
  local cap = tonumber(ARGV[i])
  local state = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk = tonumber(state[1])
  local ts = tonumber(state[2])
  if tk == nil or ts == nil then
    tk = cap
    ts = now
  end
  tk = math.min(cap, tk + math.max(0, now - ts) * cap / 60000.0)
  tokens[i] = tk
  if tk < 1 then allowed = 0 end
end
local worst = 1
local retry_ms = 0
for i = 1, n do
  local cap = tonumber(ARGV[i])
  local rate = cap / 60000.0
  local tk = tokens[i]
  if allowed == 1 then tk = tk - cost end
  tokens[i] = tk
  redis.call('HSET', KEYS[i], 'tk', tostring(tk), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tk) / rate) + 1000)
  if tk < 1 then retry_ms = math.max(retry_ms, math.ceil((1 - tk) / rate)) end
  if tk / cap < tokens[worst] / tonumber(ARGV[worst]) then worst = i end
end
local cap = tonumber(ARGV[worst])
local reset_ms = math.ceil((cap - tokens[worst]) / (cap / 60000.0))
return {allowed, cap, math.floor(tokens[worst]), reset_ms, retry_ms}
"""


@dataclass(frozen=True)
class Bucket:
    key: str
    per_minute: int


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.retry_after_seconds, 1))
        return headers


class RateLimiter:
    """The bucket script on redis-py's asyncio client: a connection pool and a registered script (EVALSHA,
    loaded again by redis-py if the server lost it), so one round trip per request and concurrent requests
    on separate connections; a slow or lost reply costs only its own request. hiredis parses the replies
    when installed."""

    def __init__(self, redis_url: str, prefix: str, *, timeout: float = 1.0, max_connections: int = 64) -> None:
        self.prefix = prefix
        self.loop = asyncio.get_running_loop()
        self._pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._redis = Redis(connection_pool=self._pool)
        self._script = self._redis.register_script(BUCKET_SCRIPT_LUA)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, "rl", *parts))

    async def hit(self, *buckets: Bucket, cost: int = 1) -> RateLimitResult | None:
        """Take ``cost`` tokens from every bucket (or none, if any is empty); None if Redis is unreachable.

        ``cost=0`` only asks whether every bucket has a token (e.g. before work that is charged if it fails).
        """
        try:
            raw = await self._script(keys=[b.key for b in buckets], args=[*(b.per_minute for b in buckets), cost])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate_limiter_unavailable", error=type(exc).__name__)
            return None
        allowed, limit, remaining, reset_ms, retry_ms = (int(v) for v in raw)
        return RateLimitResult(
            allowed=bool(allowed),
            limit=limit,
            remaining=remaining,
            reset_seconds=math.ceil(reset_ms / 1000),
            retry_after_seconds=math.ceil(retry_ms / 1000),
        )

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


_limiters: dict[tuple[int, str, str], RateLimiter] = {}


def rate_limiter(redis_url: str, prefix: str) -> RateLimiter:
    """The limiter for this Redis, key prefix and event loop (a connection belongs to the loop that opened it)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), redis_url, prefix)
    limiter = _limiters.get(key)
    if limiter is None or limiter.loop is not loop:
        limiter = _limiters[key] = RateLimiter(redis_url, prefix)
    return limiter
