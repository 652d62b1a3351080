"""SpApiClient unit tests with respx (HTTP) and the real Redis token bucket (fast plans)."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
import respx
from redis.asyncio import Redis

from acorn_api.amazon.client import (
    USER_AGENT,
    CallStats,
    ConnectionCredentials,
    RetryPolicy,
    SpApiClient,
    format_datetime,
    split_windows,
)
from acorn_api.amazon.errors import (
    SpApiBadRequest,
    SpApiMalformedResponse,
    SpApiNotFound,
    SpApiServerError,
    SpApiThrottled,
    SpApiTimeout,
    SpApiUnauthorized,
)
from acorn_api.amazon.lwa import LwaTokenCache
from acorn_api.amazon.ratelimit import DEFAULT_PLANS, RatePlan, RedisTokenBucket
from acorn_api.amazon.regions import (
    LWA_TOKEN_URL,
    Region,
    api_base_url,
    lwa_token_url,
    marketplace_id,
    region_for_marketplace,
)
from acorn_api.amazon.wire import PurchaseOrder, ResumePoint

HOST = "sellingpartnerapi-na.amazon.com"
BASE = f"https://{HOST}"
ORDERS = "/vendor/orders/v1/purchaseOrders"
FAST_PLANS = {op: RatePlan(10_000.0, 1_000) for op in DEFAULT_PLANS}


@pytest.fixture
def vendor_redis_url(request: pytest.FixtureRequest) -> str:
    """The lead's ``redis_url`` fixture when present, else ``ACORN_TEST_REDIS_URL``."""
    try:
        return str(request.getfixturevalue("redis_url"))
    except pytest.FixtureLookupError:
        return os.environ.get("ACORN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@dataclass
class Harness:
    redis: Redis
    http: httpx.AsyncClient
    prefix: str
    sleeps: list[float] = field(default_factory=list)
    tokens: LwaTokenCache = field(default_factory=LwaTokenCache)

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)

    def client(
        self,
        retry: RetryPolicy | None = None,
        plans: dict[str, RatePlan] | None = None,
        stats: CallStats | None = None,
    ) -> SpApiClient:
        creds = ConnectionCredentials(
            connection_key="conn-1",
            region=Region.NA,
            lwa_client_id="cid",
            lwa_client_secret="csecret",
            lwa_refresh_token="Atzr|r",
        )
        limiter = RedisTokenBucket(self.redis, "conn-1", plans=plans or FAST_PLANS, key_prefix=self.prefix)
        return SpApiClient(
            self.http,
            self.redis,
            creds,
            self.tokens,
            retry or RetryPolicy(max_attempts=4, base_delay=0.2, max_delay=1.0, timeout=2.0),
            rate_limiter=limiter,
            stats=stats,
            sleep=self.sleep,
        )


@pytest_asyncio.fixture
async def h(vendor_redis_url: str) -> AsyncIterator[Harness]:
    redis = Redis.from_url(vendor_redis_url)
    prefix = f"test:acorn:client:{uuid.uuid4().hex}"
    async with httpx.AsyncClient() as http:
        yield Harness(redis=redis, http=http, prefix=prefix)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def lwa(mock: respx.MockRouter, *tokens: str) -> respx.Route:
    route = mock.post(LWA_TOKEN_URL)
    route.side_effect = [httpx.Response(200, json={"access_token": t, "expires_in": 3600}) for t in tokens]
    return route


def order(number: str, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "purchaseOrderNumber": number,
        "purchaseOrderState": "New",
        "orderDetails": {
            "purchaseOrderDate": "2026-01-02T10:00:00Z",
            "purchaseOrderStateChangedDate": "2026-01-02T10:00:00Z",
            "sellingParty": {"partyId": "ACME1"},
            "items": [
                {
                    "itemSequenceNumber": "1",
                    "amazonProductIdentifier": "B000000001",
                    "orderedQuantity": {"amount": 3, "unitOfMeasure": "Eaches", "unitSize": 1},
                    "isBackOrderAllowed": False,
                    "netCost": {"currencyCode": "USD", "amount": amount},
                }
            ],
        },
        **extra,
    }


def orders_page(orders: list[dict[str, Any]], next_token: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"orders": orders}
    if next_token:
        payload["pagination"] = {"nextToken": next_token}
    return {"payload": payload}


def err(code: str, message: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": details}]}


def ok_po(number: str = "PO000001") -> httpx.Response:
    return httpx.Response(200, json={"payload": order(number)}, headers={"x-amzn-RequestId": "rid-ok"})


# ---------------------------------------------------------------- regions & helpers


def test_regions_marketplaces_and_override() -> None:
    assert api_base_url(Region.EU) == "https://sellingpartnerapi-eu.amazon.com"
    assert api_base_url("FE") == "https://sellingpartnerapi-fe.amazon.com"
    assert api_base_url(Region.NA, "http://127.0.0.1:8123/") == "http://127.0.0.1:8123"
    assert lwa_token_url() == "https://api.amazon.com/auth/o2/token"
    # a connection's endpoint never decides where its refresh token goes (see amazon.endpoints)
    creds = ConnectionCredentials("k", Region.NA, "id", "secret", "token", endpoint_override="https://evil.example")
    assert creds.token_url == "https://api.amazon.com/auth/o2/token"
    assert marketplace_id("US") == "ATVPDKIKX0DER"
    assert marketplace_id("uk") == marketplace_id("GB") == "A1F83G8C2ARO7P"
    assert region_for_marketplace("IN") is Region.EU
    assert region_for_marketplace("SG") is Region.FE
    assert region_for_marketplace("BR") is Region.NA
    with pytest.raises(KeyError):
        marketplace_id("XX")


def test_format_datetime_is_rfc3339_utc_z_and_refuses_naive() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_datetime(datetime(2026, 1, 1, 1, 30, tzinfo=cet)) == "2026-01-01T00:30:00Z"
    assert format_datetime(datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)) == "2026-01-01T00:00:00.123Z"
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2026, 1, 1))


def test_split_windows_at_most_seven_days() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    windows = split_windows(start, start + timedelta(days=15))
    assert windows == [
        (start, start + timedelta(days=7)),
        (start + timedelta(days=7), start + timedelta(days=14)),
        (start + timedelta(days=14), start + timedelta(days=15)),
    ]
    assert split_windows(start, start + timedelta(days=7)) == [(start, start + timedelta(days=7))]
    with pytest.raises(ValueError):
        split_windows(start, start)


def test_money_is_decimal_and_unknown_fields_are_kept() -> None:
    raw = json.dumps(order("PO1", amount="1234567890.123456789", brandNewField={"x": 1})).encode()
    po = PurchaseOrder.model_validate_json(raw)
    assert po.order_details is not None
    net_cost = po.order_details.items[0].net_cost
    assert net_cost is not None
    assert net_cost.amount == Decimal("1234567890.123456789")
    assert isinstance(net_cost.amount, Decimal)
    assert po.model_extra == {"brandNewField": {"x": 1}}
    assert po.order_details.purchase_order_date == datetime(2026, 1, 2, 10, tzinfo=UTC)
    # populate_by_name: snake_case construction works too, and dumps back to camelCase
    assert PurchaseOrder(purchase_order_number="X", purchase_order_state="New").model_dump(
        by_alias=True, exclude_none=True
    ) == {"purchaseOrderNumber": "X", "purchaseOrderState": "New"}


# ---------------------------------------------------------------- request basics


@pytest.mark.asyncio
async def test_request_headers_request_id_and_stats(h: Harness) -> None:
    client = h.client()
    with respx.mock(assert_all_called=True) as mock:
        lwa(mock, "Atza|tok-1")
        route = mock.get(f"{BASE}{ORDERS}/PO000001").mock(return_value=ok_po())
        result = await client.get_purchase_order("PO000001")
    assert result.value.purchase_order_number == "PO000001"
    assert result.request_id == "rid-ok"
    assert json.loads(result.raw)["payload"]["purchaseOrderNumber"] == "PO000001"
    sent = route.calls[0].request
    assert sent.headers["x-amz-access-token"] == "Atza|tok-1"
    assert sent.headers["user-agent"] == USER_AGENT == "acorn-api/0.1 (Language=Python)"
    assert client.stats.api_calls == 1
    assert client.stats.retries == 0


@pytest.mark.asyncio
async def test_retries_429_500_503_timeout_then_succeeds(h: Harness) -> None:
    client = h.client(retry=RetryPolicy(max_attempts=5, base_delay=0.2, max_delay=1.0, timeout=2.0))
    with respx.mock() as mock:
        lwa(mock, "tok")
        route = mock.get(f"{BASE}{ORDERS}/PO000001")
        route.side_effect = [
            httpx.Response(
                429, json=err("QuotaExceeded", "You exceeded your quota"), headers={"x-amzn-RequestId": "r1"}
            ),
            httpx.Response(500, json=err("InternalFailure", "We encountered an internal error")),
            httpx.Response(503, text="Service Unavailable", headers={"x-amzn-RequestId": "r3"}),
            httpx.ReadTimeout("too slow"),
            ok_po(),
        ]
        result = await client.get_purchase_order("PO000001")
    assert result.value.purchase_order_number == "PO000001"
    assert route.call_count == 5
    s = client.stats
    assert (s.api_calls, s.retries, s.throttled) == (5, 4, 1)
    assert dict(s.faults) == {"throttled": 1, "server_error": 2, "timeout": 1}
    assert s.failed_request_ids == ["r1", "r3"]
    # full-jitter exponential backoff, capped: retry n sleeps in [0, min(1.0, 0.2 * 2**(n-1))]
    assert len(h.sleeps) == 4
    for n, delay in enumerate(h.sleeps, start=1):
        assert 0.0 <= delay <= min(1.0, 0.2 * 2 ** (n - 1))


@pytest.mark.asyncio
async def test_backoff_without_jitter_is_exponential_and_capped(h: Harness) -> None:
    client = h.client(retry=RetryPolicy(max_attempts=6, base_delay=0.1, max_delay=0.5, jitter=False))
    with respx.mock() as mock:
        lwa(mock, "tok")
        mock.get(f"{BASE}{ORDERS}/PO000001").side_effect = [httpx.Response(500)] * 5 + [ok_po()]
        await client.get_purchase_order("PO000001")
    assert h.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


@pytest.mark.asyncio
async def test_retries_exhausted_raise_last_typed_error_with_request_id(h: Harness) -> None:
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        route = mock.get(f"{BASE}{ORDERS}/PO000001")
        route.side_effect = [
            httpx.Response(503, json=err("ServiceUnavailable", "busy"), headers={"x-amzn-RequestId": f"rid-{i}"})
            for i in range(3)
        ] + [httpx.Response(429, json=err("QuotaExceeded", "slow down"), headers={"x-amzn-RequestId": "rid-last"})]
        with pytest.raises(SpApiThrottled) as excinfo:
            await client.get_purchase_order("PO000001")
    assert route.call_count == 4  # max_attempts
    e = excinfo.value
    assert (e.status, e.code, e.message, e.request_id) == (429, "QuotaExceeded", "slow down", "rid-last")
    assert client.stats.failed_request_ids == ["rid-0", "rid-1", "rid-2", "rid-last"]
    assert client.stats.retries == 3


@pytest.mark.asyncio
async def test_connection_errors_are_retried_and_finally_typed(h: Harness) -> None:
    client = h.client(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    with respx.mock() as mock:
        lwa(mock, "tok")
        mock.get(f"{BASE}{ORDERS}/PO000001").side_effect = [httpx.ConnectError("refused"), ok_po()]
        assert (await client.get_purchase_order("PO000001")).value.purchase_order_number == "PO000001"
        mock.get(f"{BASE}{ORDERS}/PO000002").side_effect = httpx.ConnectTimeout("slow")
        with pytest.raises(SpApiTimeout):
            await client.get_purchase_order("PO000002")
    assert client.stats.faults["connection"] == 1
    assert client.stats.faults["timeout"] == 2


@pytest.mark.parametrize(
    ("status", "error_cls"),
    [(400, SpApiBadRequest), (422, SpApiBadRequest), (404, SpApiNotFound)],
)
@pytest.mark.asyncio
async def test_error_envelope_becomes_typed_exception_without_retry(
    h: Harness, status: int, error_cls: type[Exception]
) -> None:
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        route = mock.get(f"{BASE}{ORDERS}/PO000001").respond(
            status,
            json=err("InvalidInput", "Invalid purchaseOrderNumber", "must be 8 characters"),
            headers={"x-amzn-RequestId": "rid-bad"},
        )
        with pytest.raises(error_cls) as excinfo:
            await client.get_purchase_order("PO000001")
    assert route.call_count == 1
    e = excinfo.value
    assert isinstance(e, SpApiBadRequest | SpApiNotFound)
    assert (e.code, e.message, e.details, e.status, e.request_id) == (
        "InvalidInput",
        "Invalid purchaseOrderNumber",
        "must be 8 characters",
        status,
        "rid-bad",
    )
    assert h.sleeps == []


@pytest.mark.asyncio
async def test_expired_token_invalidates_and_retries_once_with_fresh_token(h: Harness) -> None:
    client = h.client()
    with respx.mock() as mock:
        token_route = lwa(mock, "tok-old", "tok-new", "tok-newer")
        route = mock.get(f"{BASE}{ORDERS}/PO000001")
        route.side_effect = [
            httpx.Response(
                403,
                json=err(
                    "Unauthorized",
                    "Access to requested resource is denied.",
                    "The access token you provided has expired.",
                ),
            ),
            ok_po(),
        ]
        result = await client.get_purchase_order("PO000001")
        assert result.value.purchase_order_number == "PO000001"
        assert [c.request.headers["x-amz-access-token"] for c in route.calls] == ["tok-old", "tok-new"]
        assert token_route.call_count == 2
        assert client.stats.token_invalidations == 1
        assert h.sleeps == []  # no backoff needed for a token refresh

        # a 403 that survives a fresh token is a real denial: raised after exactly one retry
        denied = mock.get(f"{BASE}{ORDERS}/PO000002").respond(
            403, json=err("Unauthorized", "Access to requested resource is denied.")
        )
        with pytest.raises(SpApiUnauthorized) as excinfo:
            await client.get_purchase_order("PO000002")
    assert denied.call_count == 2
    assert excinfo.value.code == "Unauthorized"
    assert token_route.call_count == 3


@pytest.mark.asyncio
async def test_truncated_json_is_retried_then_raises_malformed(h: Harness) -> None:
    body = json.dumps({"payload": order("PO000001")})
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        route = mock.get(f"{BASE}{ORDERS}/PO000001")
        route.side_effect = [httpx.Response(200, content=body[: len(body) // 2].encode()), ok_po()]
        assert (await client.get_purchase_order("PO000001")).value.purchase_order_number == "PO000001"
        assert route.call_count == 2

        always_bad = mock.get(f"{BASE}{ORDERS}/PO000002").respond(
            200, content=body[:40].encode(), headers={"x-amzn-RequestId": "rid-trunc"}
        )
        with pytest.raises(SpApiMalformedResponse) as excinfo:
            await client.get_purchase_order("PO000002")
    assert always_bad.call_count == 4
    assert excinfo.value.request_id == "rid-trunc"
    assert client.stats.faults["malformed"] == 5


@pytest.mark.asyncio
async def test_body_failing_model_validation_is_malformed(h: Harness) -> None:
    client = h.client(retry=RetryPolicy(max_attempts=1))
    with respx.mock() as mock:
        lwa(mock, "tok")
        mock.get(f"{BASE}{ORDERS}/PO000001").respond(200, json={"payload": {"purchaseOrderState": "New"}})
        with pytest.raises(SpApiMalformedResponse, match="purchaseOrderNumber"):
            await client.get_purchase_order("PO000001")


@pytest.mark.asyncio
async def test_rate_limit_header_adapts_the_shared_bucket(h: Harness) -> None:
    client = h.client(plans={"getPurchaseOrder": RatePlan(5.0, 10)})  # 0.5/s lies within the clamped range
    with respx.mock() as mock:
        lwa(mock, "tok")
        mock.get(f"{BASE}{ORDERS}/PO000001").respond(
            200, json={"payload": order("PO000001")}, headers={"x-amzn-RateLimit-Limit": "0.5"}
        )
        await client.get_purchase_order("PO000001")
    limiter = client.rate_limiter
    assert limiter.current_rate("getPurchaseOrder") == 0.5
    stored = await cast("Awaitable[bytes | None]", h.redis.hget(limiter.redis_key("getPurchaseOrder"), "rate"))
    assert stored is not None and float(stored) == 0.5


@pytest.mark.asyncio
async def test_lwa_outage_during_call_is_retried(h: Harness) -> None:
    client = h.client()
    with respx.mock() as mock:
        mock.post(LWA_TOKEN_URL).side_effect = [
            httpx.Response(503, text="oops"),
            httpx.Response(200, json={"access_token": "tok", "expires_in": 3600}),
        ]
        mock.get(f"{BASE}{ORDERS}/PO000001").mock(return_value=ok_po())
        await client.get_purchase_order("PO000001")
    assert client.stats.faults["lwa_unavailable"] == 1
    assert client.stats.api_calls == 1


# ---------------------------------------------------------------- windowing & pagination


def _orders_handler(
    pages: dict[tuple[str, str | None], httpx.Response],
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        key = (params.get("createdAfter") or params.get("changedAfter") or "", params.get("nextToken"))
        return pages[key]

    return handler


@pytest.mark.asyncio
async def test_iter_purchase_orders_splits_into_7_day_windows_and_follows_next_token(h: Harness) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 16, 12, tzinfo=UTC)
    pages = {
        ("2026-01-01T00:00:00Z", None): httpx.Response(
            200,
            json=orders_page([order("PO000001"), order("PO000002")], "tok-a"),
            headers={"x-amzn-RequestId": "p1"},
        ),
        ("2026-01-01T00:00:00Z", "tok-a"): httpx.Response(
            200, json=orders_page([order("PO000003")]), headers={"x-amzn-RequestId": "p2"}
        ),
        ("2026-01-08T00:00:00Z", None): httpx.Response(200, json=orders_page([])),
        ("2026-01-15T00:00:00Z", None): httpx.Response(200, json=orders_page([order("PO000004")], "tok-b")),
        ("2026-01-15T00:00:00Z", "tok-b"): httpx.Response(200, json={"payload": {"orders": [order("PO000005")]}}),
    }
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        route = mock.route(method="GET", host=HOST, path=ORDERS).mock(side_effect=_orders_handler(pages))
        collected = [
            page
            async for page in client.iter_purchase_orders(
                created_after=start,
                created_before=end,
                limit=2,
                purchase_order_state="New",
                is_po_changed=False,
            )
        ]
    sent = [dict(call.request.url.params) for call in route.calls]
    common = {"limit": "2", "includeDetails": "true", "purchaseOrderState": "New", "isPOChanged": "false"}
    w1 = {"createdAfter": "2026-01-01T00:00:00Z", "createdBefore": "2026-01-08T00:00:00Z"}
    w2 = {"createdAfter": "2026-01-08T00:00:00Z", "createdBefore": "2026-01-15T00:00:00Z"}
    w3 = {"createdAfter": "2026-01-15T00:00:00Z", "createdBefore": "2026-01-16T12:00:00Z"}
    assert sent == [
        {**common, **w1},
        {**common, **w1, "nextToken": "tok-a"},
        {**common, **w2},
        {**common, **w3},
        {**common, **w3, "nextToken": "tok-b"},
    ]
    assert [[o.purchase_order_number for o in p.items] for p in collected] == [
        ["PO000001", "PO000002"],
        ["PO000003"],
        [],
        ["PO000004"],
        ["PO000005"],
    ]
    assert [p.page_token for p in collected] == [None, "tok-a", None, None, "tok-b"]
    assert [p.next_token for p in collected] == ["tok-a", None, None, "tok-b", None]
    assert [p.request_id for p in collected[:2]] == ["p1", "p2"]
    assert json.loads(collected[0].raw)["payload"]["pagination"]["nextToken"] == "tok-a"
    assert (collected[2].window_start, collected[2].window_end) == (
        start + timedelta(days=7),
        start + timedelta(days=14),
    )
    assert [p.resume_after for p in collected] == [
        ResumePoint(start, "tok-a"),
        ResumePoint(start + timedelta(days=7), None),
        ResumePoint(start + timedelta(days=14), None),
        ResumePoint(start + timedelta(days=14), "tok-b"),
        None,
    ]

    # resuming from the committed first page continues with its nextToken, then the next windows
    with respx.mock() as mock:
        route = mock.route(method="GET", host=HOST, path=ORDERS).mock(side_effect=_orders_handler(pages))
        resumed = [
            p
            async for p in client.iter_purchase_orders(
                created_after=start,
                created_before=end,
                limit=2,
                purchase_order_state="New",
                is_po_changed=False,
                resume=collected[0].resume_after,
            )
        ]
    assert [dict(c.request.url.params) for c in route.calls] == sent[1:]
    assert [p.page_token for p in resumed] == [None if t is None else t for t in ["tok-a", None, None, "tok-b"]]


@pytest.mark.asyncio
async def test_iter_purchase_orders_changed_range_and_argument_checks(h: Harness) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        route = mock.route(method="GET", host=HOST, path=ORDERS).respond(200, json=orders_page([]))
        pages = [
            p
            async for p in client.iter_purchase_orders(
                changed_after=start, changed_before=start + timedelta(days=1), include_details=False
            )
        ]
    assert len(pages) == 1
    params = dict(route.calls[0].request.url.params)
    assert params == {
        "limit": "100",
        "includeDetails": "false",
        "changedAfter": "2026-03-01T00:00:00Z",
        "changedBefore": "2026-03-02T00:00:00Z",
    }
    with pytest.raises(ValueError, match="exactly one range"):
        client.iter_purchase_orders(created_after=start, changed_after=start)
    with pytest.raises(ValueError, match="naive"):
        client.iter_purchase_orders(created_after=datetime(2026, 1, 1), created_before=start)
    with pytest.raises(TypeError, match="unknown filter"):
        client.iter_purchase_orders(created_after=start, created_before=start + timedelta(days=1), bogus=1)


@pytest.mark.asyncio
async def test_pagination_loop_is_detected(h: Harness) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        mock.route(method="GET", host=HOST, path=ORDERS).respond(200, json=orders_page([], "same"))
        with pytest.raises(SpApiMalformedResponse, match="loop"):
            async for _ in client.iter_purchase_orders(created_after=start, created_before=start + timedelta(days=1)):
                pass


@pytest.mark.asyncio
async def test_status_and_shipment_iterators(h: Harness) -> None:
    start = datetime(2026, 2, 1, tzinfo=UTC)
    status_body = {
        "payload": {
            "ordersStatus": [
                {
                    "purchaseOrderNumber": "PO000001",
                    "purchaseOrderStatus": "OPEN",
                    "purchaseOrderDate": "2026-02-01T00:00:00Z",
                    "sellingParty": {"partyId": "ACME1"},
                    "shipToParty": {"partyId": "ABE2"},
                    "itemStatus": [
                        {
                            "itemSequenceNumber": "1",
                            "netCost": {"currencyCode": "USD", "amount": "5.10"},
                            "acknowledgementStatus": {
                                "confirmationStatus": "ACCEPTED",
                                "acceptedQuantity": {"amount": 2, "unitOfMeasure": "Eaches"},
                            },
                            "receivingStatus": {
                                "receiveStatus": "PARTIALLY_RECEIVED",
                                "receivedQuantity": {"amount": 1, "unitOfMeasure": "Eaches"},
                                "lastReceiveDate": "2026-02-05T00:00:00Z",
                            },
                        }
                    ],
                }
            ]
        }
    }
    shipment_body = {
        "payload": {
            "shipments": [
                {
                    "vendorShipmentIdentifier": "SHIP-1",
                    "transactionType": "New",
                    "transactionDate": "2026-02-02T00:00:00Z",
                    "currentshipmentStatusDate": "2026-02-03T00:00:00Z",
                    "sellingParty": {"partyId": "ACME1"},
                    "shipFromParty": {"partyId": "WH1"},
                    "shipToParty": {"partyId": "ABE2"},
                }
            ]
        }
    }
    client = h.client()
    with respx.mock() as mock:
        lwa(mock, "tok")
        status_route = mock.route(method="GET", host=HOST, path="/vendor/orders/v1/purchaseOrdersStatus").respond(
            200, json=status_body
        )
        ship_route = mock.route(method="GET", host=HOST, path="/vendor/shipping/v1/shipments").respond(
            200, json=shipment_body
        )
        statuses = [
            p
            async for p in client.iter_purchase_orders_status(
                updated_after=start,
                updated_before=start + timedelta(days=9),
                item_receive_status="PARTIALLY_RECEIVED",
            )
        ]
        shipments = [p async for p in client.iter_shipment_details(vendor_shipment_identifier="SHIP-1")]
    assert [dict(c.request.url.params)["updatedAfter"] for c in status_route.calls] == [
        "2026-02-01T00:00:00Z",
        "2026-02-08T00:00:00Z",
    ]
    assert dict(status_route.calls[0].request.url.params)["itemReceiveStatus"] == "PARTIALLY_RECEIVED"
    item = statuses[0].items[0].item_status[0]
    assert item.net_cost is not None and item.net_cost.amount == Decimal("5.10")
    assert item.acknowledgement_status is not None and item.acknowledgement_status.confirmation_status == "ACCEPTED"
    assert item.receiving_status is not None and item.receiving_status.receive_status == "PARTIALLY_RECEIVED"
    assert dict(ship_route.calls[0].request.url.params) == {
        "limit": "50",
        "vendorShipmentIdentifier": "SHIP-1",
    }
    shipment = shipments[0].items[0]
    assert shipment.current_shipment_status_date == datetime(2026, 2, 3, tzinfo=UTC)
    assert shipments[0].window_start is None and shipments[0].resume_after is None


# ---------------------------------------------------------------- submissions & transactions


@pytest.mark.asyncio
async def test_submit_acknowledgements_body_and_transaction_status(h: Harness) -> None:
    client = h.client()
    ack = {
        "purchaseOrderNumber": "PO000001",
        "sellingParty": {"partyId": "ACME1"},
        "acknowledgementDate": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        "items": [
            {
                "orderedQuantity": {"amount": 3, "unitOfMeasure": "Eaches"},
                "netCost": {"currencyCode": "USD", "amount": Decimal("10.10")},
                "itemAcknowledgements": [
                    {
                        "acknowledgementCode": "Accepted",
                        "acknowledgedQuantity": {"amount": 3, "unitOfMeasure": "Eaches"},
                    }
                ],
            }
        ],
    }
    with respx.mock() as mock:
        lwa(mock, "tok")
        post = mock.post(f"{BASE}/vendor/orders/v1/acknowledgements").respond(
            202, json={"payload": {"transactionId": "tx-1"}}
        )
        get = mock.get(f"{BASE}/vendor/transactions/v1/transactions/tx-1").respond(
            200, json={"payload": {"transactionStatus": {"transactionId": "tx-1", "status": "Success"}}}
        )
        tx = await client.submit_acknowledgements([ack])
        status = await client.get_transaction(tx.value)
    sent = json.loads(post.calls[0].request.content)
    assert post.calls[0].request.headers["content-type"] == "application/json"
    assert sent["acknowledgements"][0]["acknowledgementDate"] == "2026-01-02T01:04:05Z"
    assert sent["acknowledgements"][0]["items"][0]["netCost"]["amount"] == "10.10"
    assert tx.value == "tx-1"
    assert status.value.status == "Success"
    assert get.call_count == 1
    with pytest.raises(TypeError, match="float"):
        await client.submit_invoices([{"invoiceTotal": {"currencyCode": "USD", "amount": 1.5}}])


# ---------------------------------------------------------------- reports


@pytest.mark.asyncio
async def test_run_report_polls_until_done_and_downloads_gzip_without_token(h: Harness) -> None:
    client = h.client()
    content = b"col1\tcol2\n1\t2\n"
    doc_url = "https://tortuga-prod-na.s3-external-1.amazonaws.com/doc-1?X-Amz-Signature=abc"
    report = {
        "reportId": "r-1",
        "reportType": "GET_VENDOR_SALES_REPORT",
        "createdTime": "2026-01-01T00:00:00Z",
    }
    with respx.mock() as mock:
        lwa(mock, "tok")
        create = mock.post(f"{BASE}/reports/2021-06-30/reports").respond(202, json={"reportId": "r-1"})
        poll = mock.get(f"{BASE}/reports/2021-06-30/reports/r-1")
        poll.side_effect = [
            httpx.Response(200, json={**report, "processingStatus": "IN_QUEUE"}),
            httpx.Response(200, json={**report, "processingStatus": "IN_PROGRESS"}),
            httpx.Response(200, json={**report, "processingStatus": "DONE", "reportDocumentId": "doc-1"}),
        ]
        mock.get(f"{BASE}/reports/2021-06-30/documents/doc-1").respond(
            200, json={"reportDocumentId": "doc-1", "url": doc_url, "compressionAlgorithm": "GZIP"}
        )
        download = mock.get(doc_url).respond(200, content=gzip.compress(content))
        run = await client.run_report(
            "GET_VENDOR_SALES_REPORT",
            ["US"],
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 2, tzinfo=UTC),
            {"reportPeriod": "DAY", "distributorView": "MANUFACTURING", "sellingProgram": "RETAIL"},
            poll_initial=1.0,
            poll_max=1.5,
        )
    assert run.content == content
    assert run.report.processing_status == "DONE"
    assert run.document is not None and run.document.report_document_id == "doc-1"
    assert json.loads(create.calls[0].request.content) == {
        "reportType": "GET_VENDOR_SALES_REPORT",
        "marketplaceIds": ["ATVPDKIKX0DER"],
        "dataStartTime": "2026-01-01T00:00:00Z",
        "dataEndTime": "2026-01-02T00:00:00Z",
        "reportOptions": {
            "reportPeriod": "DAY",
            "distributorView": "MANUFACTURING",
            "sellingProgram": "RETAIL",
        },
    }
    assert "x-amz-access-token" not in download.calls[0].request.headers
    assert h.sleeps == [1.0, 1.5]  # poll backoff, capped at poll_max


@pytest.mark.asyncio
async def test_run_report_cancelled_and_fatal(h: Harness) -> None:
    client = h.client()
    base = {"reportType": "T", "createdTime": "2026-01-01T00:00:00Z"}
    with respx.mock() as mock:
        lwa(mock, "tok")
        mock.post(f"{BASE}/reports/2021-06-30/reports").side_effect = [
            httpx.Response(202, json={"reportId": "r-c"}),
            httpx.Response(202, json={"reportId": "r-f"}),
        ]
        mock.get(f"{BASE}/reports/2021-06-30/reports/r-c").respond(
            200, json={**base, "reportId": "r-c", "processingStatus": "CANCELLED"}
        )
        mock.get(f"{BASE}/reports/2021-06-30/reports/r-f").respond(
            200, json={**base, "reportId": "r-f", "processingStatus": "FATAL", "reportDocumentId": "doc-err"}
        )
        mock.get(f"{BASE}/reports/2021-06-30/documents/doc-err").respond(
            200, json={"reportDocumentId": "doc-err", "url": "https://example.com/err.json"}
        )
        mock.get("https://example.com/err.json").respond(200, content=b'{"errorDetails": "bad dates"}')
        cancelled = await client.run_report("T", ["ATVPDKIKX0DER"])
        fatal = await client.run_report("T", ["ATVPDKIKX0DER"])
    assert (cancelled.report.processing_status, cancelled.document, cancelled.content) == (
        "CANCELLED",
        None,
        None,
    )
    assert fatal.report.processing_status == "FATAL"
    assert fatal.content == b'{"errorDetails": "bad dates"}'


@pytest.mark.asyncio
async def test_report_document_download_retries_5xx_and_rejects_bad_gzip(h: Harness) -> None:
    from acorn_api.amazon.wire import ReportDocument

    client = h.client(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    doc = ReportDocument(report_document_id="d", url="https://example.com/d", compression_algorithm="GZIP")
    with respx.mock() as mock:
        mock.get("https://example.com/d").side_effect = [
            httpx.Response(500),
            httpx.Response(200, content=b"nope"),
        ]
        with pytest.raises(SpApiMalformedResponse, match="gzip"):
            await client.download_report_document(doc)
    assert client.stats.faults == {"server_error": 1, "malformed": 1}
    assert isinstance(SpApiServerError("x"), SpApiServerError)
