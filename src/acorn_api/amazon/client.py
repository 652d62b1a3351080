"""Async SP-API client for the Vendor (1P) APIs ACORN uses.

Every call: get an LWA access token (cached) -> take a rate-limit token (shared Redis bucket) ->
send with ``x-amz-access-token`` -> record ``x-amzn-RequestId`` -> retry transient failures
(429, 5xx, timeouts, connection errors, malformed JSON) with capped exponential backoff and full
jitter; on 401/403 drop the access token and retry once with a fresh one.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pydantic_core
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from acorn_api.amazon.errors import (
    SpApiConnectionError,
    SpApiEndpointRefused,
    SpApiError,
    SpApiMalformedResponse,
    SpApiRateLimitWait,
    SpApiThrottled,
    SpApiTimeout,
    SpApiTooLarge,
    SpApiUnauthorized,
)
from acorn_api.amazon.lwa import LwaCredentials, LwaTokenCache
from acorn_api.amazon.ratelimit import RatePlan, RedisTokenBucket
from acorn_api.amazon.regions import LWA_TOKEN_URL, MARKETPLACES, Region, api_base_url
from acorn_api.amazon.wire import (
    PURCHASE_ORDERS_PAGE,
    PURCHASE_ORDERS_STATUS_PAGE,
    SHIPMENT_DETAILS_PAGE,
    ApiResult,
    CreateReportResponse,
    GetPurchaseOrderResponse,
    GetPurchaseOrdersResponse,
    GetPurchaseOrdersStatusResponse,
    GetShipmentDetailsResponse,
    GetTransactionResponse,
    Page,
    PaginationData,
    PurchaseOrder,
    PurchaseOrderData,
    PurchaseOrderStatus,
    PurchaseOrderStatusData,
    Report,
    ReportDocument,
    ResumePoint,
    Shipment,
    ShipmentData,
    Transaction,
    TransactionIdResponse,
)
from acorn_api.core.netguard import UnsafeURL

T = TypeVar("T")

USER_AGENT = "acorn-api/0.1 (Language=Python)"
#: The longest createdAfter..createdBefore (or changed/updated) range the vendor APIs accept.
MAX_WINDOW = timedelta(days=7)
_MAX_RECORDED_REQUEST_IDS = 1000

_ORDERS_PATH = "/vendor/orders/v1/purchaseOrders"
_ORDERS_STATUS_PATH = "/vendor/orders/v1/purchaseOrdersStatus"
_ACK_PATH = "/vendor/orders/v1/acknowledgements"
_SHIPMENTS_PATH = "/vendor/shipping/v1/shipments"
_INVOICES_PATH = "/vendor/payments/v1/invoices"
_TRANSACTIONS_PATH = "/vendor/transactions/v1/transactions"
_REPORTS_PATH = "/reports/2021-06-30/reports"
_DOCUMENTS_PATH = "/reports/2021-06-30/documents"

_ORDER_FILTERS = {
    "po_item_state": "poItemState",
    "is_po_changed": "isPOChanged",
    "purchase_order_state": "purchaseOrderState",
    "ordering_vendor_code": "orderingVendorCode",
}
_STATUS_FILTERS = {
    "purchase_order_number": "purchaseOrderNumber",
    "purchase_order_status": "purchaseOrderStatus",
    "item_confirmation_status": "itemConfirmationStatus",
    "item_receive_status": "itemReceiveStatus",
    "ordering_vendor_code": "orderingVendorCode",
    "ship_to_party_id": "shipToPartyId",
}
_SHIPMENT_FILTERS = {
    name: "".join(w if i == 0 else w[:1].upper() + w[1:] for i, w in enumerate(name.split("_")))
    for name in (
        "shipment_confirmed_before",
        "shipment_confirmed_after",
        "package_label_created_before",
        "package_label_created_after",
        "shipped_before",
        "shipped_after",
        "estimated_delivery_before",
        "estimated_delivery_after",
        "shipment_delivery_before",
        "shipment_delivery_after",
        "requested_pick_up_before",
        "requested_pick_up_after",
        "scheduled_pick_up_before",
        "scheduled_pick_up_after",
        "current_shipment_status",
        "vendor_shipment_identifier",
        "buyer_reference_number",
        "buyer_warehouse_code",
        "seller_warehouse_code",
    )
}

_TERMINAL_REPORT_STATUSES = frozenset({"DONE", "FATAL", "CANCELLED"})


# ---------------------------------------------------------------- configuration & stats


@dataclass(frozen=True, slots=True)
class ConnectionCredentials:
    """One vendor connection: where to call and how to authenticate."""

    connection_key: str
    region: Region
    lwa_client_id: str
    lwa_client_secret: str = field(repr=False)
    lwa_refresh_token: str = field(repr=False)
    endpoint_override: str | None = None
    """Replaces the regional host (simulator / Amazon sandbox), checked by ``amazon.endpoints`` first."""
    rate_limit_key: str | None = None
    """What the usage plan is attached to (selling-partner id); defaults to ``connection_key``."""
    token_url: str = LWA_TOKEN_URL
    """Where the refresh token is exchanged: Amazon's LWA; never derived from ``endpoint_override`` here."""

    @property
    def base_url(self) -> str:
        return api_base_url(self.region, self.endpoint_override)

    @property
    def lwa(self) -> LwaCredentials:
        return LwaCredentials(self.lwa_client_id, self.lwa_client_secret, self.lwa_refresh_token)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    """Total attempts per call, including the first."""
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True
    """Full jitter: sleep uniform(0, capped exponential) -- spreads retries of many workers."""
    timeout: float = 30.0
    """Per-request timeout (seconds): connecting, and each wait for the next bytes."""
    deadline: float = 120.0
    """The whole answer (headers and body) must have arrived within this (seconds): a server that drips a
    byte just before each read timeout is cut off here."""

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        cap = min(self.max_delay, self.base_delay * (2 ** max(retry_number - 1, 0)))
        return rng.uniform(0.0, cap) if self.jitter else cap


@dataclass(slots=True)
class CallStats:
    """Counters accumulated across calls, so a sync run can report what it cost."""

    api_calls: int = 0
    throttled: int = 0
    retries: int = 0
    token_invalidations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    failed_request_ids: list[str] = field(default_factory=list)

    def record_failure(self, error: SpApiError) -> None:
        self.faults[error.kind] += 1
        if isinstance(error, SpApiThrottled):
            self.throttled += 1
        if error.request_id and len(self.failed_request_ids) < _MAX_RECORDED_REQUEST_IDS:
            self.failed_request_ids.append(error.request_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls,
            "throttled": self.throttled,
            "retries": self.retries,
            "token_invalidations": self.token_invalidations,
            "faults": dict(self.faults),
            "failed_request_ids": list(self.failed_request_ids),
        }


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    """Caps on a report document: what is downloaded, and what it decompresses to (a gzip bomb stops early)."""

    max_bytes: int = 64 * 1024 * 1024
    max_decompressed_bytes: int = 256 * 1024 * 1024
    chunk_size: int = 64 * 1024
    max_seconds: float = 900.0
    """The whole download must be done within this (a slow drip never ends otherwise)."""


@dataclass(frozen=True, slots=True)
class ReportRun:
    """Outcome of :meth:`SpApiClient.run_report`.

    ``content`` is the (decompressed) document for DONE reports; for FATAL reports Amazon may also
    provide a document describing the failure, which is downloaded too.  CANCELLED has no document.
    """

    report: Report
    document: ReportDocument | None
    content: bytes | None


# ---------------------------------------------------------------- helpers


def format_datetime(value: datetime) -> str:
    """RFC 3339 UTC with ``Z``; naive datetimes are refused (they are a bug waiting to happen)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: SP-API timestamps must be timezone-aware")
    utc = value.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def split_windows(
    start: datetime, end: datetime, max_window: timedelta = MAX_WINDOW
) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into consecutive windows no longer than ``max_window``."""
    format_datetime(start)
    format_datetime(end)
    if end <= start:
        raise ValueError(f"empty range: {start.isoformat()} .. {end.isoformat()}")
    windows: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        upper = min(cursor + max_window, end)
        windows.append((cursor, upper))
        cursor = upper
    return windows


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    return str(value)


def _filter_params(filters: Mapping[str, Any], allowed: Mapping[str, str], operation: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        wire_name = allowed.get(name)
        if wire_name is None:
            raise TypeError(f"{operation}: unknown filter {name!r} (known: {sorted(allowed)})")
        out[wire_name] = _param_value(value)
    return out


def _jsonable(value: Any) -> Any:
    """Normalise a request body: models by alias, datetimes RFC 3339 ``Z``, Decimals as strings."""
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="python", by_alias=True, exclude_none=True))
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("float in an SP-API request body: use Decimal for amounts")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _range(
    operation: str,
    pairs: Sequence[tuple[str, str, datetime | None, datetime | None]],
) -> tuple[str, str, datetime, datetime]:
    """Pick the one (after, before) range the caller used; ``before`` defaults to now."""
    used = [(a, b, s, e) for a, b, s, e in pairs if s is not None or e is not None]
    if len(used) != 1:
        names = " or ".join(f"{a}/{b}" for a, b, _, _ in pairs)
        raise ValueError(f"{operation}: give exactly one range ({names})")
    after_name, before_name, start, end = used[0]
    if start is None:
        raise ValueError(f"{operation}: {after_name} is required with {before_name}")
    end = end if end is not None else datetime.now(UTC)
    split_windows(start, end)  # validate eagerly (aware datetimes, non-empty range), not on first page
    return after_name, before_name, start, end


@dataclass(frozen=True, slots=True)
class _Listing:
    """A paginated listing's request, checked eagerly (bad arguments raise at the call, not at the first page)."""

    operation: str
    path: str
    params: dict[str, str]
    range_names: tuple[str, str] | None
    start: datetime | None
    end: datetime | None


def _orders_listing(
    created_after: datetime | None,
    created_before: datetime | None,
    changed_after: datetime | None,
    changed_before: datetime | None,
    include_details: bool,
    limit: int,
    sort_order: str | None,
    filters: Mapping[str, Any],
) -> _Listing:
    after_name, before_name, start, end = _range(
        "getPurchaseOrders",
        [
            ("createdAfter", "createdBefore", created_after, created_before),
            ("changedAfter", "changedBefore", changed_after, changed_before),
        ],
    )
    if not 1 <= limit <= 100:
        raise ValueError("limit must be 1..100")
    params = {"limit": str(limit), "includeDetails": _param_value(include_details)}
    if sort_order:
        params["sortOrder"] = sort_order
    params.update(_filter_params(filters, _ORDER_FILTERS, "getPurchaseOrders"))
    return _Listing("getPurchaseOrders", _ORDERS_PATH, params, (after_name, before_name), start, end)


def _statuses_listing(
    created_after: datetime | None,
    created_before: datetime | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
    limit: int,
    sort_order: str | None,
    filters: Mapping[str, Any],
) -> _Listing:
    after_name, before_name, start, end = _range(
        "getPurchaseOrdersStatus",
        [
            ("createdAfter", "createdBefore", created_after, created_before),
            ("updatedAfter", "updatedBefore", updated_after, updated_before),
        ],
    )
    if not 1 <= limit <= 100:
        raise ValueError("limit must be 1..100")
    params = {"limit": str(limit)}
    if sort_order:
        params["sortOrder"] = sort_order
    params.update(_filter_params(filters, _STATUS_FILTERS, "getPurchaseOrdersStatus"))
    return _Listing("getPurchaseOrdersStatus", _ORDERS_STATUS_PATH, params, (after_name, before_name), start, end)


def _shipments_listing(
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    sort_order: str | None,
    filters: Mapping[str, Any],
) -> _Listing:
    if not 1 <= limit <= 50:
        raise ValueError("limit must be 1..50")
    params = {"limit": str(limit)}
    if sort_order:
        params["sortOrder"] = sort_order
    params.update(_filter_params(filters, _SHIPMENT_FILTERS, "GetShipmentDetails"))
    start: datetime | None = None
    end: datetime | None = None
    range_names: tuple[str, str] | None = None
    if created_after is not None or created_before is not None:
        _, _, start, end = _range(
            "GetShipmentDetails", [("createdAfter", "createdBefore", created_after, created_before)]
        )
        range_names = ("createdAfter", "createdBefore")
    return _Listing("GetShipmentDetails", _SHIPMENTS_PATH, params, range_names, start, end)


# ---------------------------------------------------------------- the client


class SpApiClient:
    """SP-API client for one vendor connection.

    Share ``http`` (one ``httpx.AsyncClient`` per worker), ``redis`` and ``token_cache`` between the
    clients of a worker; ``stats`` accumulates over every call made through this instance.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        redis: Redis,
        credentials: ConnectionCredentials,
        token_cache: LwaTokenCache,
        retry: RetryPolicy | None = None,
        *,
        rate_limiter: RedisTokenBucket | None = None,
        rate_plans: Mapping[str, RatePlan] | None = None,
        stats: CallStats | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_rate_wait: float = 300.0,
        max_response_bytes: int = 64 * 1024 * 1024,
        download_limits: DownloadLimits | None = None,
        check_report_url: Callable[[str], Any] | None = None,
    ) -> None:
        self._http = http
        self._max_rate_wait = max_rate_wait
        self._max_response_bytes = max_response_bytes
        self._download_limits = download_limits or DownloadLimits()
        self._check_report_url = check_report_url
        self._credentials = credentials
        self._tokens = token_cache
        self._retry = retry or RetryPolicy()
        self._limiter = rate_limiter or RedisTokenBucket(
            redis, credentials.rate_limit_key or credentials.connection_key, plans=rate_plans
        )
        self.stats = stats if stats is not None else CallStats()
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not crypto
        self._sleep = sleep
        self._base_url = credentials.base_url

    @property
    def rate_limiter(self) -> RedisTokenBucket:
        return self._limiter

    # ------------------------------------------------------------ core request loop

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        parse: Callable[[bytes], T],
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> ApiResult[T]:
        url = self._base_url + path
        content = None if body is None else pydantic_core.to_json(_jsonable(body))
        key = self._credentials.connection_key
        auth_retry_left = True
        attempt = 0
        while True:
            attempt += 1
            access_token: str | None = None
            retry_after: float | None = None
            try:
                # The access token is fetched *before* the rate-limit token is taken so that an LWA round
                # trip never sits between admission and sending: the server's bucket then sees requests
                # spaced exactly as they were admitted (an expiry during a long wait is caught by the
                # 401/403 refresh below).
                access_token = await self._tokens.get(key, self._credentials.token_url, self._credentials.lwa)
                try:
                    await self._limiter.acquire(operation, max_wait=self._max_rate_wait)
                except TimeoutError as exc:
                    raise SpApiRateLimitWait(
                        f"{operation}: waiting for a rate-limit token would exceed {self._max_rate_wait:.0f}s",
                        code="RateLimitWait",
                    ) from exc
                headers = {
                    "x-amz-access-token": access_token,
                    "user-agent": USER_AGENT,
                    "accept": "application/json",
                }
                if content is not None:
                    headers["content-type"] = "application/json"
                self.stats.api_calls += 1
                try:
                    # streamed, so a body larger than the cap is refused without being held whole; the
                    # deadline bounds the whole answer, the timeout only each wait
                    async with (
                        asyncio.timeout(self._retry.deadline),
                        self._http.stream(
                            method,
                            url,
                            params=params,
                            content=content,
                            headers=headers,
                            timeout=self._retry.timeout,
                        ) as response,
                    ):
                        body = await _read_limited(response, self._max_response_bytes, operation)
                except (httpx.TimeoutException, TimeoutError) as exc:
                    raise SpApiTimeout(f"{operation}: request timed out ({exc!r})") from exc
                except httpx.TransportError as exc:
                    raise SpApiConnectionError(f"{operation}: connection failed ({exc!r})") from exc
                except UnsafeURL as exc:
                    raise SpApiEndpointRefused(f"{operation}: {exc}", code="EndpointRefused") from exc
                request_id = response.headers.get("x-amzn-RequestId")
                await self._limiter.observe_rate_header(operation, response.headers.get("x-amzn-RateLimit-Limit"))
                if response.status_code >= 400:
                    retry_after = _retry_after_seconds(response.headers.get("retry-after"))
                    raise SpApiError.from_response(response.status_code, body, request_id)
                try:
                    value = parse(body)
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                        for e in exc.errors(include_input=False, include_url=False)[:3]
                    )
                    raise SpApiMalformedResponse(
                        f"{operation}: response body failed validation ({exc.error_count()} errors): {problems}",
                        code="MalformedResponse",
                        status=response.status_code,
                        request_id=request_id,
                    ) from exc
                return ApiResult(value=value, raw=body, request_id=request_id)
            except SpApiUnauthorized as err:
                self.stats.record_failure(err)
                if not auth_retry_left:
                    raise
                # the token may have expired or been revoked under us: one retry with a fresh token
                auth_retry_left = False
                self._tokens.invalidate(key, access_token)
                self.stats.token_invalidations += 1
                self.stats.retries += 1
                attempt -= 1  # the auth retry does not consume the transient-failure budget
            except SpApiError as err:
                self.stats.record_failure(err)
                if not err.retryable or attempt >= self._retry.max_attempts:
                    raise
                delay = self._retry.backoff(attempt, self._rng)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self._retry.max_delay))
                self.stats.retries += 1
                await self._sleep(delay)

    # ------------------------------------------------------------ pagination

    async def _iter_pages(
        self,
        operation: str,
        path: str,
        params: Mapping[str, str],
        extract: Callable[[bytes], tuple[list[T], str | None]],
        *,
        range_names: tuple[str, str] | None,
        start: datetime | None,
        end: datetime | None,
        resume: ResumePoint | None,
    ) -> AsyncIterator[Page[T]]:
        windows: list[tuple[datetime | None, datetime | None]]
        if range_names is None or start is None or end is None:
            windows = [(None, None)]
        else:
            first = start
            if resume is not None and resume.window_start is not None:
                if not start <= resume.window_start < end:
                    raise ValueError("resume point lies outside the requested range")
                first = resume.window_start
            windows = list(split_windows(first, end))
        for index, (w_start, w_end) in enumerate(windows):
            query = dict(params)
            if range_names is not None and w_start is not None and w_end is not None:
                query[range_names[0]] = format_datetime(w_start)
                query[range_names[1]] = format_datetime(w_end)
            token: str | None = resume.next_token if (resume is not None and index == 0) else None
            seen: set[str] = set()
            while True:
                page_query = dict(query)
                if token is not None:
                    page_query["nextToken"] = token
                    seen.add(token)
                result = await self._call(operation, "GET", path, extract, params=page_query)
                items, next_token = result.value
                next_token = next_token or None
                if next_token is not None and next_token in seen:
                    raise SpApiMalformedResponse(
                        f"{operation}: pagination loop (nextToken repeated)",
                        code="PaginationLoop",
                        request_id=result.request_id,
                    )
                if next_token is not None:
                    resume_after: ResumePoint | None = ResumePoint(w_start, next_token)
                elif index + 1 < len(windows):
                    resume_after = ResumePoint(windows[index + 1][0], None)
                else:
                    resume_after = None
                yield Page(
                    items=items,
                    raw=result.raw,
                    request_id=result.request_id,
                    window_start=w_start,
                    window_end=w_end,
                    page_token=token,
                    next_token=next_token,
                    resume_after=resume_after,
                )
                if next_token is None:
                    break
                token = next_token

    # ------------------------------------------------------------ vendor orders
    #
    # Each listing comes twice: items as models (``iter_purchase_orders``: handy, ~11 ms of validation per page of
    # 100 orders with details) and items as validated wire dicts (``iter_purchase_orders_data``: the same checks
    # in ~1 ms, for bulk syncs that turn every page into rows anyway).

    def iter_purchase_orders(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        changed_after: datetime | None = None,
        changed_before: datetime | None = None,
        include_details: bool = True,
        limit: int = 100,
        sort_order: str | None = None,
        resume: ResumePoint | None = None,
        **filters: Any,
    ) -> AsyncIterator[Page[PurchaseOrder]]:
        """Pages of purchase orders for a created *or* changed range, in <=7-day windows.

        Filters (snake_case): po_item_state, is_po_changed, purchase_order_state, ordering_vendor_code.
        Pass a page's ``resume_after`` as ``resume`` (with the same range) to continue after it.
        """
        listing = _orders_listing(
            created_after, created_before, changed_after, changed_before, include_details, limit, sort_order, filters
        )
        return self._iter_listing(listing, _extract_orders, resume)

    def iter_purchase_orders_data(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        changed_after: datetime | None = None,
        changed_before: datetime | None = None,
        include_details: bool = True,
        limit: int = 100,
        sort_order: str | None = None,
        resume: ResumePoint | None = None,
        **filters: Any,
    ) -> AsyncIterator[Page[PurchaseOrderData]]:
        """:meth:`iter_purchase_orders` with each order as a validated wire dict (:class:`PurchaseOrderData`)."""
        listing = _orders_listing(
            created_after, created_before, changed_after, changed_before, include_details, limit, sort_order, filters
        )
        return self._iter_listing(listing, _extract_order_data, resume)

    async def get_purchase_order(self, purchase_order_number: str) -> ApiResult[PurchaseOrder]:
        result = await self._call(
            "getPurchaseOrder",
            "GET",
            f"{_ORDERS_PATH}/{_path_segment(purchase_order_number)}",
            lambda raw: GetPurchaseOrderResponse.model_validate_json(raw).payload,
        )
        return result

    def iter_purchase_orders_status(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
        sort_order: str | None = None,
        resume: ResumePoint | None = None,
        **filters: Any,
    ) -> AsyncIterator[Page[PurchaseOrderStatus]]:
        """Pages of purchase order statuses for a created *or* updated range, in <=7-day windows.

        Filters: purchase_order_number, purchase_order_status, item_confirmation_status,
        item_receive_status, ordering_vendor_code, ship_to_party_id.
        """
        listing = _statuses_listing(
            created_after, created_before, updated_after, updated_before, limit, sort_order, filters
        )
        return self._iter_listing(listing, _extract_statuses, resume)

    def iter_purchase_orders_status_data(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
        sort_order: str | None = None,
        resume: ResumePoint | None = None,
        **filters: Any,
    ) -> AsyncIterator[Page[PurchaseOrderStatusData]]:
        """:meth:`iter_purchase_orders_status` with each status as a validated wire dict."""
        listing = _statuses_listing(
            created_after, created_before, updated_after, updated_before, limit, sort_order, filters
        )
        return self._iter_listing(listing, _extract_status_data, resume)

    async def submit_acknowledgements(
        self, acknowledgements: Sequence[Mapping[str, Any] | BaseModel]
    ) -> ApiResult[str]:
        """Submit PO acknowledgements; returns the transaction id (poll with :meth:`get_transaction`)."""
        return await self._call(
            "submitAcknowledgement",
            "POST",
            _ACK_PATH,
            _extract_transaction_id,
            body={"acknowledgements": list(acknowledgements)},
        )

    # ------------------------------------------------------------ shipments, invoices, transactions

    def iter_shipment_details(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        sort_order: str | None = None,
        resume: ResumePoint | None = None,
        **filters: Any,
    ) -> AsyncIterator[Page[Shipment]]:
        """Pages of GetShipmentDetails; with ``created_after`` the range is split into <=7-day windows."""
        listing = _shipments_listing(created_after, created_before, limit, sort_order, filters)
        return self._iter_listing(listing, _extract_shipments, resume)

    def iter_shipment_details_data(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        sort_order: str | None = None,
        resume: ResumePoint | None = None,
        **filters: Any,
    ) -> AsyncIterator[Page[ShipmentData]]:
        """:meth:`iter_shipment_details` with each shipment as a validated wire dict."""
        listing = _shipments_listing(created_after, created_before, limit, sort_order, filters)
        return self._iter_listing(listing, _extract_shipment_data, resume)

    def _iter_listing(
        self, listing: _Listing, extract: Callable[[bytes], tuple[list[T], str | None]], resume: ResumePoint | None
    ) -> AsyncIterator[Page[T]]:
        return self._iter_pages(
            listing.operation,
            listing.path,
            listing.params,
            extract,
            range_names=listing.range_names,
            start=listing.start,
            end=listing.end,
            resume=resume,
        )

    async def submit_invoices(self, invoices: Sequence[Mapping[str, Any] | BaseModel]) -> ApiResult[str]:
        """Submit invoices; returns the transaction id."""
        return await self._call(
            "submitInvoices",
            "POST",
            _INVOICES_PATH,
            _extract_transaction_id,
            body={"invoices": list(invoices)},
        )

    async def get_transaction(self, transaction_id: str) -> ApiResult[Transaction]:
        return await self._call(
            "getTransaction",
            "GET",
            f"{_TRANSACTIONS_PATH}/{_path_segment(transaction_id)}",
            lambda raw: GetTransactionResponse.model_validate_json(raw).payload.transaction_status,
        )

    # ------------------------------------------------------------ reports

    async def create_report(
        self,
        report_type: str,
        marketplace_ids: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        options: Mapping[str, str] | None = None,
    ) -> ApiResult[str]:
        """Request a report; returns the report id.  Marketplace codes ("US") are mapped to ids."""
        spec: dict[str, Any] = {
            "reportType": report_type,
            "marketplaceIds": [_marketplace_id(m) for m in marketplace_ids],
        }
        if start is not None:
            spec["dataStartTime"] = start
        if end is not None:
            spec["dataEndTime"] = end
        if options:
            spec["reportOptions"] = dict(options)
        return await self._call(
            "createReport",
            "POST",
            _REPORTS_PATH,
            lambda raw: CreateReportResponse.model_validate_json(raw).report_id,
            body=spec,
        )

    async def get_report(self, report_id: str) -> ApiResult[Report]:
        return await self._call(
            "getReport", "GET", f"{_REPORTS_PATH}/{_path_segment(report_id)}", Report.model_validate_json
        )

    async def get_report_document(self, report_document_id: str) -> ApiResult[ReportDocument]:
        return await self._call(
            "getReportDocument",
            "GET",
            f"{_DOCUMENTS_PATH}/{_path_segment(report_document_id)}",
            ReportDocument.model_validate_json,
        )

    async def download_report_document(self, document: ReportDocument) -> bytes:
        """Fetch the document from its (pre-signed) URL -- no access token -- and gunzip if GZIP.

        Streams: the download stops as soon as it passes ``DownloadLimits.max_bytes``, and decompression
        (in a thread, chunk by chunk) as soon as the output passes ``max_decompressed_bytes``, so neither a
        huge body nor a gzip bomb is ever held whole.
        """
        if self._check_report_url is not None:
            try:
                self._check_report_url(document.url)
            except UnsafeURL as exc:
                raise SpApiEndpointRefused(str(exc), code="EndpointRefused") from exc
        gzipped = (document.compression_algorithm or "").upper() == "GZIP"
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._download_once(document, gzipped)
            except SpApiError as err:
                self.stats.record_failure(err)
                if not err.retryable or attempt >= self._retry.max_attempts:
                    raise
                self.stats.retries += 1
                await self._sleep(self._retry.backoff(attempt, self._rng))

    async def _download_once(self, document: ReportDocument, gzipped: bool) -> bytes:
        limits = self._download_limits
        try:
            async with (
                asyncio.timeout(limits.max_seconds),
                self._http.stream(
                    "GET", document.url, headers={"user-agent": USER_AGENT}, timeout=self._retry.timeout
                ) as response,
            ):
                if response.status_code >= 300:  # a redirect is never followed, nor taken for an empty document
                    body = await _read_capped(response, 64 * 1024)
                    raise SpApiError.from_response(response.status_code, body, response.headers.get("x-amz-request-id"))
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limits.max_bytes:
                    raise _too_large(document, "download", limits.max_bytes)
                inflater = _Inflater(document, limits) if gzipped else None
                parts: list[bytes] = []
                received = 0
                async for chunk in response.aiter_raw(limits.chunk_size):
                    received += len(chunk)
                    if received > limits.max_bytes:
                        raise _too_large(document, "download", limits.max_bytes)
                    if inflater is not None:
                        await asyncio.to_thread(inflater.feed, chunk)
                    else:
                        parts.append(chunk)
                if inflater is not None:
                    return await asyncio.to_thread(inflater.finish)
                return b"".join(parts)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise SpApiTimeout(f"report document download timed out ({exc!r})") from exc
        except httpx.TransportError as exc:
            raise SpApiConnectionError(f"report document download failed ({exc!r})") from exc
        except UnsafeURL as exc:
            raise SpApiEndpointRefused(f"report document download refused: {exc}", code="EndpointRefused") from exc

    async def run_report(
        self,
        report_type: str,
        marketplace_ids: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        options: Mapping[str, str] | None = None,
        *,
        poll_initial: float = 5.0,
        poll_max: float = 60.0,
        max_wait: float = 3600.0,
    ) -> ReportRun:
        """Create a report, poll (with backoff) until DONE / FATAL / CANCELLED, then download it.

        Raises :class:`SpApiTimeout` if the report is not terminal within ``max_wait`` seconds.
        """
        created = await self.create_report(report_type, marketplace_ids, start, end, options)
        report_id = created.value
        delay = poll_initial
        waited = 0.0
        while True:
            report = (await self.get_report(report_id)).value
            if report.processing_status in _TERMINAL_REPORT_STATUSES:
                break
            if waited >= max_wait:
                raise SpApiTimeout(
                    f"report {report_id} still {report.processing_status} after {waited:.0f}s",
                    code="ReportTimeout",
                )
            await self._sleep(delay)
            waited += delay
            delay = min(delay * 2, poll_max)
        if report.processing_status == "CANCELLED" or not report.report_document_id:
            return ReportRun(report=report, document=None, content=None)
        document = (await self.get_report_document(report.report_document_id)).value
        content = await self.download_report_document(document)
        return ReportRun(report=report, document=document, content=content)


# ---------------------------------------------------------------- report documents


def _too_large(document: ReportDocument, what: str, cap: int) -> SpApiTooLarge:
    return SpApiTooLarge(
        f"report document {document.report_document_id}: the {what} exceeds the cap of {cap} bytes",
        code="DocumentTooLarge",
    )


async def _read_limited(response: httpx.Response, cap: int, operation: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise SpApiTooLarge(f"{operation}: the response body exceeds {cap} bytes", code="ResponseTooLarge")
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise SpApiTooLarge(f"{operation}: the response body exceeds {cap} bytes", code="ResponseTooLarge")
        parts.append(chunk)
    return b"".join(parts)


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        parts.append(chunk[: cap - size])
        size += len(parts[-1])
        if size >= cap:
            break
    return b"".join(parts)


class _Inflater:
    """Streaming gunzip with an output cap; ``feed`` and ``finish`` are CPU work, run them in a thread."""

    def __init__(self, document: ReportDocument, limits: DownloadLimits) -> None:
        self._document = document
        self._cap = limits.max_decompressed_bytes
        self._inflate = zlib.decompressobj(wbits=31)  # gzip framing only
        self._parts: list[bytes] = []
        self._size = 0

    def _take(self, data: bytes) -> None:
        while True:
            room = self._cap - self._size + 1  # one byte past the cap tells "too large" apart from "exactly full"
            try:
                out = self._inflate.decompress(data, room)
            except zlib.error as exc:
                raise SpApiMalformedResponse(
                    f"report document {self._document.report_document_id} is not valid gzip: {exc}",
                    code="MalformedDocument",
                ) from exc
            self._size += len(out)
            if self._size > self._cap:
                raise _too_large(self._document, "decompressed document", self._cap)
            self._parts.append(out)
            data = self._inflate.unconsumed_tail
            if not data:
                return

    def feed(self, chunk: bytes) -> None:
        if self._inflate.eof:
            return  # trailing bytes after the gzip member are ignored, as gzip.decompress would not
        self._take(chunk)

    def finish(self) -> bytes:
        if not self._inflate.eof:
            self._take(b"")
            if not self._inflate.eof:
                raise SpApiMalformedResponse(
                    f"report document {self._document.report_document_id} is not valid gzip: truncated",
                    code="MalformedDocument",
                )
        return b"".join(self._parts)


# ---------------------------------------------------------------- parsers


def _extract_orders(raw: bytes) -> tuple[list[PurchaseOrder], str | None]:
    payload = GetPurchaseOrdersResponse.model_validate_json(raw).payload
    if payload is None:
        return [], None
    return payload.orders, payload.pagination.next_token if payload.pagination else None


def _extract_statuses(raw: bytes) -> tuple[list[PurchaseOrderStatus], str | None]:
    payload = GetPurchaseOrdersStatusResponse.model_validate_json(raw).payload
    if payload is None:
        return [], None
    return payload.orders_status, payload.pagination.next_token if payload.pagination else None


def _extract_shipments(raw: bytes) -> tuple[list[Shipment], str | None]:
    payload = GetShipmentDetailsResponse.model_validate_json(raw).payload
    if payload is None:
        return [], None
    return payload.shipments, payload.pagination.next_token if payload.pagination else None


def _next_token(pagination: PaginationData | None) -> str | None:
    return pagination.get("nextToken") if pagination else None


def _extract_order_data(raw: bytes) -> tuple[list[PurchaseOrderData], str | None]:
    payload = PURCHASE_ORDERS_PAGE.validate_json(raw).get("payload")
    if payload is None:
        return [], None
    return payload.get("orders", []), _next_token(payload.get("pagination"))


def _extract_status_data(raw: bytes) -> tuple[list[PurchaseOrderStatusData], str | None]:
    payload = PURCHASE_ORDERS_STATUS_PAGE.validate_json(raw).get("payload")
    if payload is None:
        return [], None
    return payload.get("ordersStatus", []), _next_token(payload.get("pagination"))


def _extract_shipment_data(raw: bytes) -> tuple[list[ShipmentData], str | None]:
    payload = SHIPMENT_DETAILS_PAGE.validate_json(raw).get("payload")
    if payload is None:
        return [], None
    return payload.get("shipments", []), _next_token(payload.get("pagination"))


def _extract_transaction_id(raw: bytes) -> str:
    return TransactionIdResponse.model_validate_json(raw).payload.transaction_id


def _path_segment(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid path parameter {value!r}")
    return httpx.URL("/" + value).raw_path.decode()[1:]


def _marketplace_id(value: str) -> str:
    market = MARKETPLACES.get(value.upper())
    return market.marketplace_id if market is not None else value


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
