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
import hashlib
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import hiredis
import structlog
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# KEYS: bucket keys. ARGV: the per-minute capacity of each bucket, in the same order.
# Returns {allowed, limit, remaining, reset_ms, retry_ms} for the tightest bucket.
BUCKET_SCRIPT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
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
  if allowed == 1 then tk = tk - 1 end
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


class PipelinedScript:
    """One Lua script over one dedicated Redis connection, with concurrent calls auto-pipelined.

    Each call is still one EVALSHA and one reply, but all the calls made in one event-loop turn leave in one
    write and come back in one read, with no pool checkout per call. redis-py's pooled client costs several times the
    CPU per command, which is most of what authentication costs per request (see bench/README.md).
    Replies come back in the order commands were sent, so pending calls are a FIFO of futures.
    """

    def __init__(self, url: str, script: str, *, timeout: float = 1.0) -> None:
        self.url = url
        self.script = script
        self.sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._buffer: list[bytes] = []
        self._connecting = asyncio.Lock()

    @staticmethod
    def _pack(*args: str | int | bytes) -> bytes:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            raw = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        return b"".join(parts)

    async def _connect(self) -> None:
        async with self._connecting:
            if self._writer is not None:
                return
            options = parse_url(self.url)
            if "path" in options:
                reader, writer = await asyncio.open_unix_connection(options["path"])
            else:
                tls = self.url.startswith("rediss://")
                reader, writer = await asyncio.open_connection(options["host"], options["port"], ssl=tls or None)
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))
            setup: list[tuple[str | int, ...]] = []
            if options.get("password"):
                setup.append(("AUTH", *([options["username"]] if options.get("username") else []), options["password"]))
            if options.get("db"):
                setup.append(("SELECT", options["db"]))
            for command in setup:
                reply = await self._send(self._pack(*command))
                if isinstance(reply, hiredis.ReplyError):
                    await self._reset(ConnectionError(f"Redis refused {command[0]}: {reply}"))
                    raise ConnectionError(str(reply))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        parser = hiredis.Reader()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("Redis closed the connection")
                parser.feed(chunk)
                while (reply := parser.gets()) is not False:
                    future = self._pending.popleft()
                    if not future.done():
                        future.set_result(reply)
        except Exception as exc:  # the connection is gone: fail what waits, reconnect on the next call
            await self._reset(exc, from_reader=True)

    async def _reset(self, exc: BaseException, *, from_reader: bool = False) -> None:
        writer, self._writer = self._writer, None
        task, self._reader_task = self._reader_task, None
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionError(str(exc)))
        self._buffer.clear()
        if task is not None and not from_reader:
            task.cancel()
        if writer is not None:
            writer.close()

    def _flush(self) -> None:
        if self._writer is not None and self._buffer:
            self._writer.write(b"".join(self._buffer))
        self._buffer.clear()

    async def _send(self, command: bytes) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        if not self._buffer:
            asyncio.get_running_loop().call_soon(self._flush)
        self._buffer.append(command)
        async with asyncio.timeout(self.timeout):
            return await future

    async def __call__(self, keys: list[str], args: list[int]) -> Any:
        if self._writer is None:
            await self._connect()
        try:
            reply = await self._send(self._pack("EVALSHA", self.sha, len(keys), *keys, *args))
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
                reply = await self._send(self._pack("EVAL", self.script, len(keys), *keys, *args))
        except TimeoutError:
            # A reply that never came leaves the FIFO out of step with the wire: start over.
            await self._reset(TimeoutError("Redis did not answer in time"))
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise RedisError(str(reply))
        return reply

    async def close(self) -> None:
        await self._reset(ConnectionError("closed"))


class RateLimiter:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        self.loop = asyncio.get_running_loop()
        self._script = PipelinedScript(redis_url, BUCKET_SCRIPT_LUA)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, "rl", *parts))

    async def hit(self, *buckets: Bucket) -> RateLimitResult | None:
        """Take one token from every bucket (or none, if any is empty); None if Redis is unreachable."""
        try:
            raw = await self._script([b.key for b in buckets], [b.per_minute for b in buckets])
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


_limiters: dict[tuple[int, str, str], RateLimiter] = {}


def rate_limiter(redis_url: str, prefix: str) -> RateLimiter:
    """The limiter for this Redis, key prefix and event loop (a connection belongs to the loop that opened it)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), redis_url, prefix)
    limiter = _limiters.get(key)
    if limiter is None or limiter.loop is not loop:
        limiter = _limiters[key] = RateLimiter(redis_url, prefix)
    return limiter
