"""The Redis token bucket, against a real Redis."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from acorn_api.amazon.ratelimit import DEFAULT_PLANS, RatePlan, RedisTokenBucket


@pytest.fixture
def vendor_redis_url(request: pytest.FixtureRequest) -> str:
    """The lead's ``redis_url`` fixture when present, else ``ACORN_TEST_REDIS_URL``."""
    try:
        return str(request.getfixturevalue("redis_url"))
    except pytest.FixtureLookupError:
        return os.environ.get("ACORN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest_asyncio.fixture
async def redis_prefix(vendor_redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """A unique key prefix per test; every key under it is deleted afterwards."""
    prefix = f"test:acorn:rl:{uuid.uuid4().hex}"
    yield vendor_redis_url, prefix
    client = Redis.from_url(vendor_redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def assert_never_over_admits(times: list[float], plan: RatePlan, slack: float = 0.005) -> None:
    """For every pair of admissions i<=j: (j-i+1) <= burst + rate*(t_j - t_i)  (+ timing slack)."""
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i, len(times)):
            admitted = j - i + 1
            allowed = plan.burst + plan.rate * (times[j] - times[i] + slack)
            assert admitted <= allowed + 1e-9, (i, j, admitted, allowed)


@pytest.mark.asyncio
async def test_burst_then_pacing_at_plan_rate(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    plan = RatePlan(rate=50.0, burst=5)
    redis = Redis.from_url(url)
    try:
        bucket = RedisTokenBucket(redis, "conn-1", plans={"op": plan}, key_prefix=prefix)
        times: list[float] = []
        start = time.monotonic()
        for _ in range(30):
            await bucket.acquire("op")
            times.append(time.monotonic())
        elapsed = times[-1] - start
    finally:
        await redis.aclose()
    # the first 5 go out immediately, then one every 20 ms
    assert times[4] - start < 0.3
    assert elapsed >= (30 - 5) / 50 - 0.005
    assert elapsed < (30 - 5) / 50 + 1.0  # generous: only "not absurdly slow" under CI load
    assert_never_over_admits(times, plan)


@pytest.mark.asyncio
async def test_two_workers_sharing_one_bucket_never_exceed_the_plan(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    plan = RatePlan(rate=40.0, burst=4)
    # two separate connections + limiter instances = two worker processes sharing a usage plan
    redis_a, redis_b = Redis.from_url(url), Redis.from_url(url)
    times: list[float] = []

    async def worker(redis: Redis, n: int) -> None:
        bucket = RedisTokenBucket(redis, "selling-partner-9", plans={"op": plan}, key_prefix=prefix)
        for _ in range(n):
            await bucket.acquire("op")
            times.append(time.monotonic())

    try:
        start = time.monotonic()
        await asyncio.gather(worker(redis_a, 20), worker(redis_b, 20), worker(redis_a, 4))
        elapsed = time.monotonic() - start
    finally:
        await redis_a.aclose()
        await redis_b.aclose()
    assert len(times) == 44
    assert elapsed >= (44 - 4) / 40 - 0.005
    assert_never_over_admits(times, plan)


@pytest.mark.asyncio
async def test_buckets_are_per_key_and_per_operation(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    plans = {"a": RatePlan(1.0, 2), "b": RatePlan(1.0, 2)}
    redis = Redis.from_url(url)
    try:
        one = RedisTokenBucket(redis, "conn-1", plans=plans, key_prefix=prefix)
        two = RedisTokenBucket(redis, "conn-2", plans=plans, key_prefix=prefix)
        assert [await one.try_acquire("a") for _ in range(2)] == [0.0, 0.0]
        wait = await one.try_acquire("a")
        assert 0.9 < wait <= 1.0  # empty: about a second until the next token at 1 req/s
        assert await one.try_acquire("b") == 0.0  # other operation: own bucket
        assert await two.try_acquire("a") == 0.0  # other connection: own bucket
        ttl = await redis.pttl(one.redis_key("a"))
        assert 0 < ttl <= 62_000
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_rate_from_header_is_shared_and_changes_pacing(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    plan = RatePlan(rate=2.0, burst=1)
    redis = Redis.from_url(url)
    try:
        worker_1 = RedisTokenBucket(redis, "conn", plans={"op": plan}, key_prefix=prefix)
        worker_2 = RedisTokenBucket(redis, "conn", plans={"op": plan}, key_prefix=prefix)
        await worker_1.observe_rate_header("op", "not-a-number")
        assert worker_1.current_rate("op") == 2.0
        await worker_1.observe_rate_header("op", "20.0")
        assert worker_1.current_rate("op") == 20.0
        # worker 2 never saw the header but uses the shared rate: 11 tokens at 20/s ~ 0.5 s, not 5 s
        start = time.monotonic()
        for _ in range(11):
            await worker_2.acquire("op")
        assert time.monotonic() - start < 1.5
        assert time.monotonic() - start >= 10 / 20 - 0.005
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_concurrent_waiters_in_one_process_and_max_wait(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    plan = RatePlan(rate=100.0, burst=2)
    redis = Redis.from_url(url)
    times: list[float] = []
    try:
        bucket = RedisTokenBucket(redis, "conn", plans={"op": plan}, key_prefix=prefix)

        async def one() -> None:
            await bucket.acquire("op")
            times.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(30)))
        assert_never_over_admits(times, plan)
        slow = RedisTokenBucket(redis, "conn", plans={"slow": RatePlan(0.01, 1)}, key_prefix=prefix)
        await slow.acquire("slow")
        with pytest.raises(TimeoutError):
            await slow.acquire("slow", max_wait=1.0)
    finally:
        await redis.aclose()


def test_default_plans_follow_the_models() -> None:
    assert DEFAULT_PLANS["getPurchaseOrders"] == RatePlan(10.0, 10)
    assert DEFAULT_PLANS["getPurchaseOrdersStatus"] == RatePlan(10.0, 10)
    assert DEFAULT_PLANS["GetShipmentDetails"] == RatePlan(10.0, 10)
    assert DEFAULT_PLANS["submitInvoices"] == RatePlan(10.0, 10)
    assert DEFAULT_PLANS["getTransaction"] == RatePlan(10.0, 20)
    assert DEFAULT_PLANS["createReport"] == RatePlan(0.0167, 15)
    assert DEFAULT_PLANS["getReport"] == RatePlan(2.0, 15)
    assert DEFAULT_PLANS["getReportDocument"] == RatePlan(0.0167, 15)


@pytest.mark.asyncio
async def test_a_hostile_rate_header_is_clamped_to_a_sane_range(redis_prefix: tuple[str, str]) -> None:
    """A server announcing a near-zero rate must not park the worker, nor a huge one make it hammer."""
    url, prefix = redis_prefix
    plan = RatePlan(rate=2.0, burst=1)
    redis = Redis.from_url(url)
    try:
        bucket = RedisTokenBucket(redis, "conn-clamp", plans={"op": plan}, key_prefix=prefix)
        await bucket.observe_rate_header("op", "0.0000001")
        assert bucket.current_rate("op") == pytest.approx(0.02)  # a hundredth of the plan, not 1e-7
        await bucket.acquire("op")
        wait = await bucket.try_acquire("op")
        assert 0 < wait <= 50.0  # one token at 0.02/s: 50 s, not 115 days
        await bucket.observe_rate_header("op", "1e9")
        assert bucket.current_rate("op") == pytest.approx(20.0)
        await bucket.observe_rate_header("op", "nan")
        assert bucket.current_rate("op") == pytest.approx(20.0)
    finally:
        await redis.aclose()
