"""SpApiClient over real HTTP against the SP-API simulator served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from redis.asyncio import Redis

from acorn_api.amazon.client import CallStats, ConnectionCredentials, RetryPolicy, SpApiClient
from acorn_api.amazon.errors import SpApiThrottled
from acorn_api.amazon.lwa import LwaTokenCache
from acorn_api.amazon.ratelimit import DEFAULT_PLANS, RatePlan, RedisTokenBucket
from acorn_api.amazon.regions import Region
from acorn_sim import FaultConfig, SimulatorConfig, create_simulator_app

ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def vendor_redis_url(request: pytest.FixtureRequest) -> str:
    """The lead's ``redis_url`` fixture when present, else ``ACORN_TEST_REDIS_URL``."""
    try:
        return str(request.getfixturevalue("redis_url"))
    except pytest.FixtureLookupError:
        return os.environ.get("ACORN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest_asyncio.fixture
async def redis_env(vendor_redis_url: str) -> AsyncIterator[tuple[Redis, str]]:
    redis = Redis.from_url(vendor_redis_url)
    prefix = f"test:acorn:sim:{uuid.uuid4().hex}"
    yield redis, prefix
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@contextlib.asynccontextmanager
async def served(config: SimulatorConfig) -> AsyncIterator[str]:
    """Run the simulator under uvicorn in its own thread (own event loop) on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_simulator_app(config),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "simulator failed to start"
            assert time.monotonic() < deadline, "simulator did not start within 10 s"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
        sock.close()


def sim_config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = {"seed": 11, "anchor": ANCHOR, "transaction_delay_seconds": 0.0}
    return SimulatorConfig(**{**base, **overrides})


def make_client(
    base_url: str,
    redis: Redis,
    prefix: str,
    http: httpx.AsyncClient,
    *,
    plans: dict[str, RatePlan],
    retry: RetryPolicy,
    token_cache: LwaTokenCache | None = None,
    bucket_key: str | None = None,
) -> SpApiClient:
    creds = ConnectionCredentials(
        connection_key=f"sim-{uuid.uuid4().hex[:8]}",
        rate_limit_key=bucket_key,
        region=Region.NA,
        lwa_client_id="sim-client",
        lwa_client_secret="sim-secret",
        lwa_refresh_token="Atzr|sim-refresh",
        endpoint_override=base_url,
        token_url=base_url + "/auth/o2/token",  # the simulator serves LWA; never derived from the endpoint
    )
    limiter = RedisTokenBucket(
        redis, bucket_key or creds.connection_key, plans={**DEFAULT_PLANS, **plans}, key_prefix=prefix
    )
    return SpApiClient(
        http, redis, creds, token_cache or LwaTokenCache(), retry, rate_limiter=limiter, stats=CallStats()
    )


async def sync_all(client: SpApiClient, days: int, limit: int, until_days: int = 0) -> tuple[list[str], int]:
    numbers: list[str] = []
    pages = 0
    async for page in client.iter_purchase_orders(
        created_after=ANCHOR - timedelta(days=days), created_before=ANCHOR - timedelta(days=until_days), limit=limit
    ):
        pages += 1
        json.loads(page.raw)  # every archived page is complete JSON
        numbers.extend(po.purchase_order_number for po in page.items)
    return numbers, pages


async def sim_get(http: httpx.AsyncClient, base_url: str, path: str) -> Any:
    response = await http.get(base_url + path)
    response.raise_for_status()
    return response.json()


@pytest.mark.asyncio
async def test_full_sync_through_a_storm_of_faults(redis_env: tuple[Redis, str]) -> None:
    redis, prefix = redis_env
    faults = FaultConfig(
        throttle=0.08,
        server_error=0.08,
        timeout=0.05,
        truncated_json=0.08,
        expired_token=0.04,
        timeout_seconds=0.8,
    )
    config = sim_config(purchase_orders=300, history_days=20, rate_overrides={"getPurchaseOrders": (50.0, 10)})
    async with served(config) as base_url, httpx.AsyncClient() as http:
        await http.put(f"{base_url}/_simulator/faults", content=faults.model_dump_json())
        client = make_client(
            base_url,
            redis,
            prefix,
            http,
            plans={"getPurchaseOrders": RatePlan(50.0, 10)},
            retry=RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.2, timeout=0.5),
        )
        numbers, pages = await sync_all(client, days=21, limit=10)
        truth = (await sim_get(http, base_url, "/_simulator/purchase-orders"))["purchaseOrderNumbers"]
        server = await sim_get(http, base_url, "/_simulator/stats")

    assert len(numbers) == len(set(numbers)) == 300
    assert sorted(numbers) == sorted(truth)
    injected = server["faults"]
    stats = client.stats
    # every kind of fault happened, and the client saw (and survived) exactly what the server injected
    assert all(injected.get(kind, 0) > 0 for kind in ("throttle", "server_error", "timeout", "truncated_json"))
    assert injected.get("expired_token", 0) > 0
    assert stats.faults["throttled"] == stats.throttled == server["throttled"]
    assert stats.faults["server_error"] == injected["server_error"]
    assert stats.faults["timeout"] == injected["timeout"]
    assert stats.faults["malformed"] == injected["truncated_json"]
    assert stats.faults["unauthorized"] == stats.token_invalidations == injected["expired_token"]
    assert server["tokensIssued"] == 1 + injected["expired_token"]
    assert stats.api_calls == server["requests"]["getPurchaseOrders"]
    assert stats.api_calls == pages + stats.retries
    # paced at the server's own plan: the 429s are the injected ones, give or take the odd pair of calls that a
    # loaded machine's scheduler delays and then delivers together (seen once or twice under load average 10+)
    assert injected["throttle"] <= server["throttled"] <= injected["throttle"] + 2


@pytest.mark.asyncio
async def test_pacing_adapts_to_rate_header_with_near_zero_429s(redis_env: tuple[Redis, str]) -> None:
    redis, prefix = redis_env
    config = sim_config(purchase_orders=300, history_days=6, rate_overrides={"getPurchaseOrders": (25.0, 5)})
    async with served(config) as base_url, httpx.AsyncClient() as http:
        client = make_client(
            base_url,
            redis,
            prefix,
            http,
            # we believe in a much faster plan; the x-amzn-RateLimit-Limit header corrects us
            plans={"getPurchaseOrders": RatePlan(500.0, 5)},
            retry=RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.5, timeout=5.0),
        )
        start = time.monotonic()
        numbers, pages = await sync_all(client, days=7, limit=5)
        elapsed = time.monotonic() - start
        server = await sim_get(http, base_url, "/_simulator/stats")
    assert len(set(numbers)) == 300
    assert client.rate_limiter.current_rate("getPurchaseOrders") == 25.0
    requests = server["requests"]["getPurchaseOrders"]
    assert requests >= pages >= 60
    assert server["throttled"] <= 2
    assert client.stats.throttled == server["throttled"]
    # after the burst of 5 the client ran at the plan's rate, not faster
    assert elapsed >= (requests - 5) / 25.0 - 0.1


@pytest.mark.asyncio
async def test_two_workers_sharing_the_usage_plan_are_not_throttled(vendor_redis_url: str) -> None:
    """Two "worker processes" (own Redis connection, HTTP client, token cache) share one bucket."""
    prefix = f"test:acorn:sim:{uuid.uuid4().hex}"
    bucket = f"selling-partner-{uuid.uuid4().hex[:8]}"
    plan = {"getPurchaseOrders": RatePlan(30.0, 5)}
    config = sim_config(purchase_orders=300, history_days=6, rate_overrides={"getPurchaseOrders": (30.0, 5)})
    redis_a, redis_b = Redis.from_url(vendor_redis_url), Redis.from_url(vendor_redis_url)
    try:
        async with served(config) as base_url, httpx.AsyncClient() as http_a, httpx.AsyncClient() as http_b:
            retry = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.5, timeout=5.0)
            worker_a = make_client(base_url, redis_a, prefix, http_a, plans=plan, retry=retry, bucket_key=bucket)
            worker_b = make_client(base_url, redis_b, prefix, http_b, plans=plan, retry=retry, bucket_key=bucket)
            start = time.monotonic()
            (numbers_a, pages_a), (numbers_b, pages_b) = await asyncio.gather(
                sync_all(worker_a, days=7, limit=8, until_days=3), sync_all(worker_b, days=3, limit=8)
            )
            elapsed = time.monotonic() - start
            server = await sim_get(http_a, base_url, "/_simulator/stats")
    finally:
        keys = [k async for k in redis_a.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis_a.delete(*keys)
        await redis_a.aclose()
        await redis_b.aclose()
    assert sorted(numbers_a + numbers_b) == sorted(set(numbers_a + numbers_b))
    assert len(numbers_a) + len(numbers_b) == 300
    requests = server["requests"]["getPurchaseOrders"]
    assert requests == pages_a + pages_b + worker_a.stats.retries + worker_b.stats.retries
    assert server["throttled"] <= 2  # of ~40 requests: the odd one from localhost latency jitter
    assert elapsed >= (requests - 5) / 30.0 - 0.1


@pytest.mark.asyncio
async def test_access_token_expiring_mid_run_is_refreshed(redis_env: tuple[Redis, str]) -> None:
    redis, prefix = redis_env
    config = sim_config(
        purchase_orders=240, history_days=6, access_token_ttl=1, rate_overrides={"getPurchaseOrders": (40.0, 4)}
    )
    # a cache whose clock never moves keeps using the token until Amazon says it has expired
    frozen: Callable[[], float] = lambda: 0.0  # noqa: E731
    async with served(config) as base_url, httpx.AsyncClient() as http:
        client = make_client(
            base_url,
            redis,
            prefix,
            http,
            plans={"getPurchaseOrders": RatePlan(40.0, 4)},
            retry=RetryPolicy(max_attempts=3, base_delay=0.05, timeout=5.0),
            token_cache=LwaTokenCache(clock=frozen, refresh_margin=0.0),
        )
        numbers, pages = await sync_all(client, days=7, limit=3)
        server = await sim_get(http, base_url, "/_simulator/stats")
    assert len(set(numbers)) == 240
    assert pages >= 80  # ~2 s at 40 req/s: the 1 s token expires at least once
    assert server["tokensIssued"] >= 2
    assert client.stats.token_invalidations == server["tokensIssued"] - 1
    assert client.stats.faults["unauthorized"] == client.stats.token_invalidations


@pytest.mark.asyncio
async def test_retries_exhausted_raise_throttled_with_request_id(redis_env: tuple[Redis, str]) -> None:
    redis, prefix = redis_env
    config = sim_config(purchase_orders=5, faults=FaultConfig(throttle=1.0))
    async with served(config) as base_url, httpx.AsyncClient() as http:
        client = make_client(
            base_url,
            redis,
            prefix,
            http,
            plans={},
            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02),
        )
        with pytest.raises(SpApiThrottled) as excinfo:
            await client.get_purchase_order("ANYTHING")
    assert excinfo.value.code == "QuotaExceeded"
    assert excinfo.value.request_id
    assert len(client.stats.failed_request_ids) == 3
    assert client.stats.failed_request_ids[-1] == excinfo.value.request_id


@pytest.mark.asyncio
async def test_status_shipments_acknowledgement_transaction_and_report(redis_env: tuple[Redis, str]) -> None:
    redis, prefix = redis_env
    async with served(sim_config(purchase_orders=60, history_days=10)) as base_url, httpx.AsyncClient() as http:
        client = make_client(
            base_url,
            redis,
            prefix,
            http,
            plans={},
            retry=RetryPolicy(max_attempts=3, base_delay=0.05, timeout=5.0),
        )
        statuses = [
            status
            async for page in client.iter_purchase_orders_status(
                created_after=ANCHOR - timedelta(days=10), created_before=ANCHOR
            )
            for status in page.items
        ]
        shipments = [
            s
            async for page in client.iter_shipment_details(
                created_after=ANCHOR - timedelta(days=10), created_before=ANCHOR
            )
            for s in page.items
        ]
        new_orders = [
            po
            async for page in client.iter_purchase_orders(
                created_after=ANCHOR - timedelta(days=10), created_before=ANCHOR, purchase_order_state="New"
            )
            for po in page.items
        ]
        assert new_orders, "the simulator should have some New purchase orders"
        po = new_orders[0]
        assert po.order_details is not None and po.order_details.selling_party is not None
        ack = {
            "purchaseOrderNumber": po.purchase_order_number,
            "sellingParty": {"partyId": po.order_details.selling_party.party_id},
            "acknowledgementDate": datetime.now(UTC),
            "items": [
                {
                    "itemSequenceNumber": item.item_sequence_number,
                    "amazonProductIdentifier": item.amazon_product_identifier,
                    "vendorProductIdentifier": item.vendor_product_identifier,
                    "orderedQuantity": item.ordered_quantity,
                    "netCost": item.net_cost,
                    "itemAcknowledgements": [
                        {"acknowledgementCode": "Accepted", "acknowledgedQuantity": item.ordered_quantity}
                    ],
                }
                for item in po.order_details.items
            ],
        }
        tx = await client.submit_acknowledgements([ack])
        for _ in range(10):
            transaction = (await client.get_transaction(tx.value)).value
            if transaction.status != "Processing":
                break
        after = await client.get_purchase_order(po.purchase_order_number)
        run = await client.run_report(
            "GET_VENDOR_SALES_REPORT",
            ["US"],
            ANCHOR - timedelta(days=3),
            ANCHOR - timedelta(seconds=1),
            {"reportPeriod": "DAY"},
            poll_initial=0.05,
            poll_max=0.1,
            max_wait=10,
        )
    assert statuses and all(s.purchase_order_number for s in statuses)
    assert all(isinstance(s.item_status, list) for s in statuses)
    assert isinstance(shipments, list)
    assert transaction.status == "Success", transaction
    assert after.value.purchase_order_state == "Acknowledged"
    assert run.report.processing_status == "DONE"
    assert run.content is not None
    document = json.loads(run.content)
    assert isinstance(document, dict) and document
