"""The sync engine: one run of one kind for one connection, committed page by page, resumable.

A run is *claimed* in its own transaction (queued → running, a fresh ``worker_token``, a heartbeat).
Then every page Amazon returns is archived, upserted and the run's counters and watermark advanced in one
transaction per page: that commit is the job's commit point. A worker that dies loses at most the pages
it had fetched but not committed; whoever claims the run next (the same job delivered again after its
heartbeat went stale, or the recovery cron) continues from the watermark. Every write is keyed by Amazon's
natural keys, so re-reading a page changes nothing.

Fetching and writing overlap: one task follows ``nextToken`` at the pace of the rate limit while another
commits the pages in order, so the database never slows the rate-limited chain of calls down.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import structlog
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import crypto
from acorn_api.amazon.client import CallStats, RetryPolicy, SpApiClient
from acorn_api.amazon.connector import make_client
from acorn_api.amazon.endpoints import EndpointNotAllowed
from acorn_api.amazon.errors import LwaAuthError, SpApiError, SpApiUnauthorized
from acorn_api.amazon.lwa import LwaTokenCache
from acorn_api.amazon.models import SyncRun, VendorConnection
from acorn_api.amazon.ratelimit import RatePlan
from acorn_api.amazon.repository import UpsertCounts, connections, purchase_orders, shipments, sync_runs
from acorn_api.amazon.schemas import SyncRunOut
from acorn_api.amazon.wire import (
    ItemAcknowledgementStatusData,
    ItemOrderedQuantityData,
    ItemQuantityData,
    ItemReceivingStatusData,
    MoneyData,
    OrderDetailsData,
    Page,
    PartyIdentificationData,
    PurchaseOrderData,
    PurchaseOrderStatusData,
    ResumePoint,
    ShipmentData,
)
from acorn_api.core.jobs import enqueue_after_commit, transaction
from acorn_api.core.time import utcnow
from acorn_api.ledger.archive import raw_documents
from acorn_api.settings import Settings
from acorn_api.webhooks.events import EventType
from acorn_api.webhooks.events import record as record_event

log = structlog.get_logger(__name__)

HEARTBEAT_INTERVAL = timedelta(seconds=5)
#: A running run whose heartbeat (every 5 s, and at every page) is older than this lost its worker; it may be
#: taken over. With the recovery cron every 10 s, a run whose worker was killed resumes within about 35 s.
STALE_AFTER = timedelta(seconds=25)
#: A queued run untouched for this long is checked for a job behind it (Redis may have lost it) and re-enqueued.
QUEUED_STALE_AFTER = timedelta(seconds=60)
#: An unexpected error (a bug, the database gone) hands the run back with a retry this many times, then fails it.
MAX_UNEXPECTED_ERRORS = 5
RUN_SYNC_JOB = "run_sync"  # the arq function (amazon.jobs.run_sync)
INITIAL_LOOKBACK = timedelta(days=181)  # six months of history, whole days included
#: Incremental syncs start this long before the previous run's end, so a change stamped in the same second
#: as the previous run's end is not missed; reading it twice changes nothing.
INCREMENTAL_OVERLAP = timedelta(minutes=5)
PAGE_SIZE = {"orders": 100, "order_status": 100, "shipments": 50}
REPORT_TYPES = ("GET_VENDOR_SALES_REPORT", "GET_VENDOR_INVENTORY_REPORT")
REPORT_OPTIONS = {"reportPeriod": "DAY", "distributorView": "MANUFACTURING", "sellingProgram": "RETAIL"}
MAX_FAILED_REQUEST_IDS = 200
_PAGE_SETTINGS = text(
    "SELECT set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)"
)
PIPELINE_DEPTH = 16  # pages fetched ahead of the writer: absorbs slow commits without unbounded memory


@dataclass
class SyncContext:
    """What a worker shares between runs: database, Redis, one HTTP client and one LWA token cache."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    http: httpx.AsyncClient
    token_cache: LwaTokenCache
    retry: RetryPolicy | None = None
    rate_plans: Mapping[str, RatePlan] | None = None
    report_poll_initial: float = 5.0
    heartbeat_interval: timedelta = HEARTBEAT_INTERVAL
    stale_after: timedelta = STALE_AFTER
    # test hook: awaited after each committed page (e.g. to kill the worker at a known point)
    after_page: Callable[[SyncRun], Awaitable[None]] | None = None


class LostOwnership(Exception):
    """Another worker took the run over (ours was presumed dead): stop without writing."""


class ConnectionStopped(Exception):
    """The run's connection was deleted or paused while the run was going: stop at the next page."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Claim:
    run_id: uuid.UUID
    account_id: uuid.UUID
    token: str
    kind: str
    range_field: str
    range_from: datetime
    range_to: datetime
    watermark: dict[str, Any] | None
    base: dict[str, Any]
    connection: VendorConnection


# ---------------------------------------------------------------- client construction


def build_client(ctx: SyncContext, connection: VendorConnection, *, stats: CallStats | None = None) -> SpApiClient:
    return make_client(
        ctx.settings,
        ctx.redis,
        ctx.http,
        ctx.token_cache,
        connection,
        stats=stats,
        retry=ctx.retry,
        rate_plans=ctx.rate_plans,
    )


# ---------------------------------------------------------------- wire → rows


def _interval(value: str | None) -> tuple[datetime | None, datetime | None]:
    if not value or "--" not in value:
        return None, None
    start, _, end = value.partition("--")
    try:
        return _aware(datetime.fromisoformat(start)), _aware(datetime.fromisoformat(end))
    except ValueError:
        return None, None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    aware = _aware(value)
    return aware.isoformat() if aware is not None else None


def _party_id(party: PartyIdentificationData | None) -> str | None:
    return party.get("partyId") if party else None


def _amount(quantity: ItemQuantityData | None) -> int | None:
    return quantity.get("amount") if quantity else None


# The row builders read the validated wire dicts of a page (``*_data`` iterators of the client) directly: no model
# instances, no dump. Timestamps stay ``datetime`` (the upsert's JSON encoder writes them, naive ones as UTC);
# amounts go as decimal strings.


def order_rows(orders: Sequence[PurchaseOrderData]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    headers: dict[str, dict[str, Any]] = {}
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for po in orders:
        number = po["purchaseOrderNumber"]
        d: OrderDetailsData = po.get("orderDetails") or {}
        ship_start, ship_end = _interval(d.get("shipWindow"))
        delivery_start, delivery_end = _interval(d.get("deliveryWindow"))
        currency: str | None = None
        total: Decimal | None = None
        for item in d.get("items") or ():
            cost: MoneyData = item.get("netCost") or {}
            price: MoneyData = item.get("listPrice") or {}
            ordered: ItemQuantityData = item.get("orderedQuantity") or {}
            amount = cost.get("amount")
            quantity = ordered.get("amount")
            cost_currency = cost.get("currencyCode")
            if cost_currency:
                currency = currency or cost_currency
            if amount is not None and quantity is not None:
                total = (total or Decimal(0)) + amount * quantity
            list_price = price.get("amount")
            sequence = item["itemSequenceNumber"]
            items[(number, sequence)] = {
                "purchase_order_number": number,
                "item_sequence_number": sequence,
                "asin": item.get("amazonProductIdentifier"),
                "vendor_sku": item.get("vendorProductIdentifier"),
                "ordered_quantity": quantity,
                "unit_of_measure": ordered.get("unitOfMeasure"),
                "unit_size": ordered.get("unitSize"),
                "is_back_order_allowed": item.get("isBackOrderAllowed"),
                "net_cost": str(amount) if amount is not None else None,
                "list_price": str(list_price) if list_price is not None else None,
                "currency": cost_currency or price.get("currencyCode"),
            }
        headers[number] = {
            "purchase_order_number": number,
            "state": po["purchaseOrderState"],
            "purchase_order_type": d.get("purchaseOrderType"),
            "purchase_order_date": d.get("purchaseOrderDate"),
            "changed_at": d.get("purchaseOrderChangedDate"),
            "state_changed_at": d.get("purchaseOrderStateChangedDate"),
            "vendor_code": _party_id(d.get("sellingParty")),
            "buying_party_id": _party_id(d.get("buyingParty")),
            "ship_to_party_id": _party_id(d.get("shipToParty")),
            "bill_to_party_id": _party_id(d.get("billToParty")),
            "deal_code": d.get("dealCode"),
            "payment_method": d.get("paymentMethod"),
            "ship_window_start": ship_start,
            "ship_window_end": ship_end,
            "delivery_window_start": delivery_start,
            "delivery_window_end": delivery_end,
            "currency": currency,
            "total_net_cost": str(total) if total is not None and currency else None,
        }
    return list(headers.values()), list(items.values())


def status_rows(statuses: Sequence[PurchaseOrderStatusData]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    headers: dict[str, dict[str, Any]] = {}
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for status in statuses:
        number = status["purchaseOrderNumber"]
        headers[number] = {
            "purchase_order_number": number,
            "purchase_order_status": status.get("purchaseOrderStatus"),
            "status_updated_at": status.get("lastUpdatedDate"),
        }
        for item in status.get("itemStatus") or ():
            ack: ItemAcknowledgementStatusData = item.get("acknowledgementStatus") or {}
            receiving: ItemReceivingStatusData = item.get("receivingStatus") or {}
            ordered: ItemOrderedQuantityData = item.get("orderedQuantity") or {}
            details = ordered.get("orderedQuantityDetails")
            cancelled = None
            if details:
                cancelled = sum(
                    (cancelled_quantity.get("amount") or 0)
                    for detail in details
                    if (cancelled_quantity := detail.get("cancelledQuantity")) is not None
                )
            sequence = item["itemSequenceNumber"]
            items[(number, sequence)] = {
                "purchase_order_number": number,
                "item_sequence_number": sequence,
                "confirmation_status": ack.get("confirmationStatus"),
                "acknowledged_quantity": _amount(ack.get("acceptedQuantity")),
                "rejected_quantity": _amount(ack.get("rejectedQuantity")),
                "cancelled_quantity": cancelled,
                "receive_status": receiving.get("receiveStatus"),
                "received_quantity": _amount(receiving.get("receivedQuantity")),
                "last_received_at": receiving.get("lastReceiveDate"),
            }
    return list(headers.values()), list(items.values())


def shipment_rows(page: Sequence[ShipmentData]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for shipment in page:
        identifier = shipment["vendorShipmentIdentifier"]
        transport = shipment.get("transportationDetails") or {}
        carrier = transport.get("carrierDetails") or {}
        measurements = shipment.get("shipmentMeasurements") or {}
        rows[identifier] = {
            "vendor_shipment_identifier": identifier,
            "transaction_type": shipment.get("transactionType"),
            "buyer_reference_number": shipment.get("buyerReferenceNumber"),
            "current_status": shipment.get("currentShipmentStatus"),
            "current_status_at": shipment.get("currentshipmentStatusDate"),
            "shipment_created_at": shipment.get("shipmentCreateDate"),
            "shipment_confirmed_at": shipment.get("shipmentConfirmDate"),
            "shipped_at": transport.get("shippedDate"),
            "estimated_delivery_at": transport.get("estimatedDeliveryDate"),
            "delivered_at": transport.get("shipmentDeliveryDate"),
            "vendor_code": _party_id(shipment.get("sellingParty")),
            "ship_from_party_id": _party_id(shipment.get("shipFromParty")),
            "ship_to_party_id": _party_id(shipment.get("shipToParty")),
            "carrier_code": carrier.get("code"),
            "bill_of_lading_number": transport.get("billOfLadingNumber"),
            "carton_count": measurements.get("totalCartonCount"),
            "purchase_order_numbers": [
                str(po["purchaseOrderNumber"])
                for po in shipment.get("purchaseOrders") or []
                if "purchaseOrderNumber" in po
            ],
            # the shipment as Amazon sent it (validated, unknown fields kept, absent and null fields left out)
            "data": {key: value for key, value in shipment.items() if value is not None},
        }
    return list(rows.values())


# ---------------------------------------------------------------- claiming and finishing


def _stats_snapshot(run: SyncRun) -> dict[str, Any]:
    return {
        "api_calls": run.api_calls,
        "throttled_calls": run.throttled_calls,
        "retries": run.retries,
        "failed_request_ids": list(run.failed_request_ids or []),
    }


def _apply_stats(run: SyncRun, base: dict[str, Any], stats: CallStats) -> None:
    run.api_calls = base["api_calls"] + stats.api_calls
    run.throttled_calls = base["throttled_calls"] + stats.throttled
    run.retries = base["retries"] + stats.retries
    run.failed_request_ids = (base["failed_request_ids"] + stats.failed_request_ids)[:MAX_FAILED_REQUEST_IDS]


async def claim(ctx: SyncContext, account_id: uuid.UUID, run_id: uuid.UUID) -> Claim | None:
    """Take the run for this worker, or ``None`` when there is nothing to do (finished, or alive elsewhere)."""
    async with ctx.sessionmaker() as session, session.begin():
        run = await sync_runs.find_for_update(session, account_id, run_id)
        if run is None or run.status not in ("queued", "running"):
            return None
        now = utcnow()
        if run.status == "running" and run.heartbeat_at is not None and run.heartbeat_at > now - ctx.stale_after:
            return None
        connection = await connections.find(session, account_id, run.connection_id)
        if connection is None:
            run.status, run.finished_at = "failed", now
            run.error = {"code": "connection_deleted", "message": "The connection was deleted."}
            return None
        if run.attempts > 0:
            run.resumes += 1
        run.attempts += 1
        run.status = "running"
        run.worker_token = secrets.token_hex(16)
        run.heartbeat_at = now
        run.started_at = run.started_at or now
        return Claim(
            run_id=run.id,
            account_id=account_id,
            token=run.worker_token,
            kind=run.kind,
            range_field=run.range_field,
            range_from=run.range_from,
            range_to=run.range_to,
            watermark=dict(run.watermark) if run.watermark else None,
            base=_stats_snapshot(run),
            connection=connection,
        )


async def _owned_run(session: AsyncSession, claim_: Claim) -> SyncRun:
    run = await sync_runs.find_for_update(session, claim_.account_id, claim_.run_id)
    if run is None or run.worker_token != claim_.token or run.status != "running":
        raise LostOwnership(str(claim_.run_id))
    return run


async def _heartbeat(ctx: SyncContext, claim_: Claim) -> None:
    """Stamp the run every few seconds while this worker holds it; a missed beat (database blip) is not fatal."""
    while True:
        await asyncio.sleep(ctx.heartbeat_interval.total_seconds())
        try:
            async with ctx.sessionmaker() as session, session.begin():
                if not await sync_runs.beat(session, claim_.account_id, claim_.run_id, claim_.token, utcnow()):
                    return
        except Exception as exc:
            log.warning("sync_run_heartbeat_missed", run_id=str(claim_.run_id), error=f"{type(exc).__name__}: {exc}")


def _error_body(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ConnectionStopped):
        return {"code": exc.code, "kind": "connection", "message": exc.message}
    if isinstance(exc, EndpointNotAllowed):
        return {"code": "endpoint_not_allowed", "kind": "endpoint_refused", "message": str(exc)}
    if isinstance(exc, SpApiError):
        return {
            "code": exc.code or exc.kind,
            "kind": exc.kind,
            "message": exc.message,
            "status": exc.status,
            "request_id": exc.request_id,
        }
    return {"code": "internal", "kind": type(exc).__name__, "message": str(exc)[:500]}


def run_job_id(run: SyncRun) -> str:
    """The arq job id for the next delivery of a queued run: one per claim, so a lost job can be looked up."""
    return f"sync:{run.id}:{run.attempts}"


def _enqueue_run(
    session: AsyncSession, run: SyncRun, *, job_id: str | None = None, delay: timedelta | None = None
) -> None:
    enqueue_after_commit(
        session,
        RUN_SYNC_JOB,
        str(run.account_id),
        str(run.id),
        job_id=job_id or run_job_id(run),
        account_id=run.account_id,
        defer_by=delay,
    )


def retry_delay(errors: int) -> timedelta:
    return timedelta(seconds=min(5 * 2 ** (errors - 1), 300))


async def _release(ctx: SyncContext, claim_: Claim, exc: BaseException) -> str:
    """After an unexpected error: back to ``queued`` with a durable, delayed retry; ``failed`` after too many."""
    async with transaction(ctx.sessionmaker, _queue(ctx)) as session:
        run = await _owned_run(session, claim_)
        errors = int(run.details.get("unexpected_errors", 0)) + 1
        run.details = {**run.details, "unexpected_errors": errors}
        run.worker_token = None
        if errors >= MAX_UNEXPECTED_ERRORS:
            body = _error_body(exc)
            run.status, run.finished_at, run.error = "failed", utcnow(), body
            message = f"{run.kind} sync {run.id}: {body['message']}"
            await connections.record_failure(session, claim_.account_id, run.connection_id, message, flag=False)
            return run.status
        run.status = "queued"
        _enqueue_run(session, run, delay=retry_delay(errors))
        return run.status


async def _finish(
    ctx: SyncContext, claim_: Claim, stats: CallStats, error: BaseException | None, partial: bool = False
) -> str:
    # the run's event and its delivery job commit together (issue 11), sent after the commit
    async with transaction(ctx.sessionmaker, _queue(ctx)) as session:
        return await _finish_run(session, claim_, stats, error, partial)


def _queue(ctx: SyncContext) -> ArqRedis:
    """The queue to send jobs to after a commit (a plain Redis client in tests shares its pool)."""
    if isinstance(ctx.redis, ArqRedis):
        return ctx.redis
    return ArqRedis(connection_pool=ctx.redis.connection_pool, default_queue_name=ctx.settings.arq_queue_name)


async def _finish_run(
    session: AsyncSession, claim_: Claim, stats: CallStats, error: BaseException | None, partial: bool
) -> str:
    run = await _owned_run(session, claim_)
    _apply_stats(run, claim_.base, stats)
    now = utcnow()
    run.finished_at = now
    run.worker_token = None
    if error is None and not partial:
        run.status = "succeeded"
        run.error = None
        await connections.record_success(session, claim_.account_id, run.connection_id, now)
    else:
        run.status = "partially_succeeded" if (run.pages > 0 or partial) else "failed"
        run.error = _error_body(error) if error is not None else run.error
        if error is not None:
            flag = isinstance(error, SpApiUnauthorized | crypto.SecretsUnreadable) or (
                isinstance(error, LwaAuthError) and not error.retryable
            )
            message = f"{run.kind} sync {run.id}: {run.error['message'] if run.error else ''}"
            await connections.record_failure(session, claim_.account_id, run.connection_id, message, flag=flag)
    await session.flush()
    await session.refresh(run)
    kind = EventType.sync_run_succeeded if run.status == "succeeded" else EventType.sync_run_failed
    record_event(session, claim_.account_id, kind, SyncRunOut.model_validate(run))
    return run.status


# ---------------------------------------------------------------- pages


@dataclass
class _Done:
    error: BaseException | None = None


@dataclass
class PageOutcome:
    counts: UpsertCounts
    fetched: int
    details: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0


def _watermark(page: Page[Any]) -> dict[str, Any]:
    after = page.resume_after
    if after is None:
        return {"complete": True}
    return {"window_start": _iso(after.window_start), "next_token": after.next_token}


def _resume_point(watermark: dict[str, Any] | None) -> ResumePoint | None:
    if not watermark or watermark.get("complete") or "window_start" not in watermark:
        return None
    start = watermark.get("window_start")
    return ResumePoint(datetime.fromisoformat(start) if start else None, watermark.get("next_token"))


async def _write_page(ctx: SyncContext, claim_: Claim, page: Page[Any], stats: CallStats, source: str) -> SyncRun:
    """One page in one transaction: archive, upsert, advance the run and its watermark (the commit point).

    Ownership is checked by the run's UPDATE at the end (``worker_token`` must still be ours); if another
    worker took the run over, the whole page rolls back. A takeover's claim waits on that row lock.
    """
    account_id = claim_.account_id
    async with ctx.sessionmaker() as session, session.begin():
        # synchronous_commit off: a page whose commit is lost in a database crash is lost with its watermark,
        # so it is fetched again; the page never needs to wait for the WAL flush.
        # force_custom_plan: a first sync grows the tables from nothing; a generic plan cached while they were
        # empty (a scan instead of the unique-index probe) would make every page slower than the last.
        await session.execute(_PAGE_SETTINGS)
        await _require_connection(session, claim_)
        archived = await raw_documents.store(
            session,
            account_id,
            page.raw,
            source=source,
            fetched_at=utcnow(),
            request_id=page.request_id,
            metadata={
                "connection_id": str(claim_.connection.id),
                "sync_run_id": str(claim_.run_id),
                "window_start": _iso(page.window_start),
                "window_end": _iso(page.window_end),
                "page_token": page.page_token,
            },
        )
        outcome = await _upsert(session, claim_, archived.id, page)
        run = await sync_runs.advance(
            session,
            account_id,
            claim_.run_id,
            claim_.token,
            fetched=outcome.fetched,
            created=outcome.counts.created,
            updated=outcome.counts.updated,
            unchanged=outcome.counts.unchanged,
            unknown=outcome.counts.unknown,
            skipped=outcome.skipped,
            watermark=_watermark(page),
            now=utcnow(),
            api_calls=claim_.base["api_calls"] + stats.api_calls,
            throttled_calls=claim_.base["throttled_calls"] + stats.throttled,
            retries=claim_.base["retries"] + stats.retries,
            failed_request_ids=(claim_.base["failed_request_ids"] + stats.failed_request_ids)[:MAX_FAILED_REQUEST_IDS],
        )
        if run is None:
            raise LostOwnership(str(claim_.run_id))
        return run


async def _require_connection(session: AsyncSession, claim_: Claim) -> None:
    """Stop when the connection was deleted or paused since the run started (checked once per page, under a
    share lock that a concurrent delete waits for)."""
    state = await connections.state_for_share(session, claim_.account_id, claim_.connection.id)
    if state is None:
        raise ConnectionStopped("connection_deleted", "The connection was deleted while the sync was running.")
    if state == "paused":
        raise ConnectionStopped("connection_paused", "The connection was paused while the sync was running.")


def _party(item: Any) -> str | None:
    """The selling party of an order (in its details), a status or a shipment (at the top)."""
    details = item.get("orderDetails")
    party = details.get("sellingParty") if details is not None else item.get("sellingParty")
    return party.get("partyId") if party else None


def for_vendor_codes(items: list[Any], vendor_codes: Sequence[str]) -> tuple[list[Any], int]:
    """The items whose selling party is one of the connection's vendor codes (all of them when it lists none),
    and how many were left out."""
    if not vendor_codes:
        return items, 0
    wanted = set(vendor_codes)
    kept = [item for item in items if _party(item) in wanted]
    return kept, len(items) - len(kept)


async def _upsert(session: AsyncSession, claim_: Claim, document_id: uuid.UUID, page: Page[Any]) -> PageOutcome:
    kept, skipped = for_vendor_codes(page.items, claim_.connection.vendor_codes or [])
    outcome = await _upsert_items(session, claim_, document_id, kept)
    outcome.skipped = skipped
    return outcome


async def _upsert_items(
    session: AsyncSession, claim_: Claim, document_id: uuid.UUID, page_items: list[Any]
) -> PageOutcome:
    account_id = claim_.account_id
    if claim_.kind == "orders":
        orders, items = order_rows(page_items)
        counts = await purchase_orders.upsert_page(
            session,
            account_id,
            connection_id=claim_.connection.id,
            sync_run_id=claim_.run_id,
            raw_document_id=document_id,
            orders=orders,
            items=items,
        )
        return PageOutcome(counts, len(orders))
    if claim_.kind == "order_status":
        orders, items = status_rows(page_items)
        counts = await purchase_orders.update_status_page(
            session, account_id, raw_document_id=document_id, orders=orders, items=items
        )
        return PageOutcome(counts, len(orders))
    rows = shipment_rows(page_items)
    counts = await shipments.upsert_page(
        session,
        account_id,
        connection_id=claim_.connection.id,
        sync_run_id=claim_.run_id,
        raw_document_id=document_id,
        shipments=rows,
    )
    return PageOutcome(counts, len(rows))


def _pages(client: SpApiClient, claim_: Claim) -> AsyncIterator[Page[Any]]:
    resume = _resume_point(claim_.watermark)
    start, end = claim_.range_from, claim_.range_to
    if claim_.kind == "orders":
        if claim_.range_field == "changed":
            return client.iter_purchase_orders_data(changed_after=start, changed_before=end, limit=100, resume=resume)
        return client.iter_purchase_orders_data(created_after=start, created_before=end, limit=100, resume=resume)
    if claim_.kind == "order_status":
        if claim_.range_field == "changed":
            return client.iter_purchase_orders_status_data(
                updated_after=start, updated_before=end, limit=100, resume=resume
            )
        return client.iter_purchase_orders_status_data(
            created_after=start, created_before=end, limit=100, resume=resume
        )
    return client.iter_shipment_details_data(created_after=start, created_before=end, limit=50, resume=resume)


_SOURCES = {"orders": "sp-api:getPurchaseOrders", "order_status": "sp-api:getPurchaseOrdersStatus"}


async def _run_pages(ctx: SyncContext, claim_: Claim, client: SpApiClient) -> None:
    """Fetch ahead while committing pages in order; the first error stops both sides."""
    if claim_.watermark and claim_.watermark.get("complete"):
        return
    queue: asyncio.Queue[Page[Any] | _Done] = asyncio.Queue(maxsize=PIPELINE_DEPTH)
    source = _SOURCES.get(claim_.kind, "sp-api:GetShipmentDetails")

    async def produce() -> None:
        try:
            async for page in _pages(client, claim_):
                await queue.put(page)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the writer, which raises it after the committed pages
            await queue.put(_Done(exc))
            return
        await queue.put(_Done())

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return
            run = await _write_page(ctx, claim_, item, client.stats, source)
            if ctx.after_page is not None:
                await ctx.after_page(run)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


def _report_rows(content: bytes) -> int:
    """Rows in a whole report document (CPU work on up to the download cap: run it in a thread)."""
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(document, dict):
        return 0
    return sum(len(v) for k, v in document.items() if k != "reportSpecification" and isinstance(v, list))


async def _run_reports(ctx: SyncContext, claim_: Claim, client: SpApiClient) -> None:
    marketplaces = list(claim_.connection.marketplaces) or ["US"]
    done = set((claim_.watermark or {}).get("reports_done", []))
    for report_type in REPORT_TYPES:
        if report_type in done:
            continue
        result = await client.run_report(
            report_type,
            marketplaces,
            claim_.range_from,
            claim_.range_to,
            REPORT_OPTIONS if report_type == "GET_VENDOR_SALES_REPORT" else {"reportPeriod": "DAY"},
            poll_initial=ctx.report_poll_initial,
        )
        rows = await asyncio.to_thread(_report_rows, result.content) if result.content is not None else 0
        async with ctx.sessionmaker() as session, session.begin():
            run = await _owned_run(session, claim_)
            await _require_connection(session, claim_)
            entry: dict[str, Any] = {
                "report_type": report_type,
                "report_id": result.report.report_id,
                "processing_status": result.report.processing_status,
                "raw_document_id": None,
                "rows": 0,
            }
            if result.content is not None:
                archived = await raw_documents.store(
                    session,
                    claim_.account_id,
                    result.content,
                    source=f"sp-api:report:{report_type}",
                    fetched_at=utcnow(),
                    metadata={
                        "connection_id": str(claim_.connection.id),
                        "sync_run_id": str(run.id),
                        "report_id": result.report.report_id,
                        "report_document_id": result.document.report_document_id if result.document else None,
                    },
                )
                entry.update(raw_document_id=str(archived.id), rows=rows)
                run.fetched += rows
                run.created += 1 if archived.created else 0
                run.unchanged += 0 if archived.created else 1
            run.pages += 1
            done.add(report_type)
            run.details = {**run.details, "reports": [*run.details.get("reports", []), entry]}
            run.watermark = {"reports_done": sorted(done)}
            run.heartbeat_at = utcnow()
            _apply_stats(run, claim_.base, client.stats)
    failed = [r for r in (await _details(ctx, claim_)).get("reports", []) if r["processing_status"] != "DONE"]
    if failed:
        raise _ReportsIncomplete(failed)


class _ReportsIncomplete(Exception):
    def __init__(self, reports: list[dict[str, Any]]) -> None:
        super().__init__(", ".join(f"{r['report_type']} ended {r['processing_status']}" for r in reports))


async def _details(ctx: SyncContext, claim_: Claim) -> dict[str, Any]:
    async with ctx.sessionmaker() as session:
        return await sync_runs.details(session, claim_.account_id, claim_.run_id)


async def execute(ctx: SyncContext, account_id: uuid.UUID, run_id: uuid.UUID) -> str | None:
    """Run (or continue) one sync run; returns its final status, or ``None`` when this delivery had nothing to do.

    Safe to call any number of times, concurrently too: only the claimant writes, and pages are idempotent.
    """
    claim_ = await claim(ctx, account_id, run_id)
    if claim_ is None:
        log.info("sync_run_skipped", run_id=str(run_id))
        return None
    log.info("sync_run_started", run_id=str(run_id), kind=claim_.kind, resumed=bool(claim_.watermark))
    stats = CallStats()
    beating = asyncio.create_task(_heartbeat(ctx, claim_))
    started = time.monotonic()
    error: BaseException | None = None
    try:
        client = build_client(ctx, claim_.connection, stats=stats)
        if claim_.kind == "reports":
            await _run_reports(ctx, claim_, client)
        else:
            await _run_pages(ctx, claim_, client)
    except LostOwnership:
        log.warning("sync_run_taken_over", run_id=str(run_id))
        return None
    except (SpApiError, crypto.SecretsUnreadable, _ReportsIncomplete, ConnectionStopped, ValueError) as exc:
        error = exc
    except Exception as exc:
        # Unexpected (database down, a bug). arq retries only ``Retry``, so the retry is ours: the run goes back
        # to the queue with a delayed job in the outbox (or fails after MAX_UNEXPECTED_ERRORS). If even that
        # cannot be written, the run stays ``running``, its heartbeat goes stale and the recovery cron resumes it.
        try:
            status = await _release(ctx, claim_, exc)
            log.warning("sync_run_released", run_id=str(run_id), status=status, error=f"{type(exc).__name__}: {exc}")
        except Exception as release_exc:
            log.warning("sync_run_release_failed", run_id=str(run_id), error=f"{type(release_exc).__name__}")
        raise
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
    try:
        status = await _finish(ctx, claim_, stats, error)
    except LostOwnership:
        return None
    log.info(
        "sync_run_finished",
        run_id=str(run_id),
        status=status,
        seconds=round(time.monotonic() - started, 3),
        api_calls=stats.api_calls,
        error=str(error) if error else None,
    )
    return status


async def recover_stale(ctx: SyncContext, now: datetime | None = None) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Put runs whose worker died back in the queue (watermark kept) with a job each (durable, via the outbox).

    Returns the (account_id, run_id) of the runs recovered.
    """
    now = now or utcnow()
    async with transaction(ctx.sessionmaker, _queue(ctx)) as session:
        stale = await sync_runs.stale(session, now - ctx.stale_after)
        for run in stale:
            run.status = "queued"
            run.worker_token = None
            run.details = {**run.details, "recovered_at": _iso(now)}
            _enqueue_run(session, run)
        return [(run.account_id, run.id) for run in stale]


_ALIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)


async def requeue_orphans(ctx: SyncContext, now: datetime | None = None) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Queued runs with no job behind them (Redis lost it, or the job died before claiming) get a new one.

    A run queued for longer than ``QUEUED_STALE_AFTER`` whose job arq no longer holds as queued, deferred or
    running is enqueued again (via the outbox). Returns the (account_id, run_id) of the runs re-enqueued.
    """
    now = now or utcnow()
    redis = _queue(ctx)
    async with transaction(ctx.sessionmaker, redis) as session:
        requeued: list[tuple[uuid.UUID, uuid.UUID]] = []
        for run in await sync_runs.queued_before(session, now - QUEUED_STALE_AFTER):
            job_id = run_job_id(run)
            status = await Job(job_id, redis, _queue_name=ctx.settings.arq_queue_name).status()
            if status in _ALIVE:
                continue
            if status == JobStatus.complete:  # arq keeps the id while it keeps the result: send a fresh one
                job_id = f"{job_id}:{secrets.token_hex(4)}"
            run.details = {**run.details, "requeued_at": _iso(now)}  # also restarts the QUEUED_STALE_AFTER clock
            _enqueue_run(session, run, job_id=job_id)
            requeued.append((run.account_id, run.id))
        return requeued
