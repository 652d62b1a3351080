"""The rules of the vendor domain: connections, sync runs, reads, invoice submissions. Flushes, never commits."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.amazon import crypto
from acorn_api.amazon.client import RetryPolicy, format_datetime
from acorn_api.amazon.errors import SpApiError
from acorn_api.amazon.lwa import LwaTokenCache
from acorn_api.amazon.models import (
    InvoiceSubmission,
    PurchaseOrder,
    PurchaseOrderItem,
    Shipment,
    SyncRun,
    VendorConnection,
)
from acorn_api.amazon.repository import connections, invoice_submissions, purchase_orders, shipments, sync_runs
from acorn_api.amazon.schedule import next_run
from acorn_api.amazon.schemas import (
    ConnectionCreate,
    ConnectionUpdate,
    InvoiceSubmissionCreate,
    SyncKind,
    SyncRunCreate,
)
from acorn_api.amazon.sync import INCREMENTAL_OVERLAP, INITIAL_LOOKBACK, make_client
from acorn_api.core.errors import Conflict, NotFound, field_error
from acorn_api.core.jobs import enqueue_after_commit
from acorn_api.core.money import quantize
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.time import utcnow
from acorn_api.core.versioning import require_version
from acorn_api.ledger.archive import RawDocument, decompress, raw_documents
from acorn_api.settings import Settings

ROTATION_WARNING_DAYS = 14
RUN_SYNC_JOB = "run_sync"
SUBMIT_INVOICE_JOB = "submit_invoice"
AUDITED_FIELDS = (
    "name",
    "region",
    "endpoint",
    "marketplaces",
    "vendor_codes",
    "credentials_rotate_by",
    "sync_schedule",
    "status",
)


def warnings_for(connection: VendorConnection, today: date | None = None) -> list[str]:
    """What the user should act on: credentials that expire within 14 days (or already did)."""
    today = today or utcnow().date()
    rotate_by = connection.credentials_rotate_by
    if rotate_by is None:
        return []
    days = (rotate_by - today).days
    if days < 0:
        return [f"credentials_expired: the LWA credentials were due for rotation on {rotate_by.isoformat()}"]
    if days <= ROTATION_WARNING_DAYS:
        return [f"credentials_rotate_soon: rotate the LWA credentials by {rotate_by.isoformat()} ({days} days left)"]
    return []


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A connection named {name!r} already exists in this account.",
        code="connection_name_taken",
        errors=[field_error(["body", "name"], "already used by another connection", "unique")],
    )


def _set_credentials(settings: Settings, connection: VendorConnection, client_id: str, secret: str, token: str) -> None:
    connection.lwa_client_id_encrypted = crypto.encrypt(settings, client_id)
    connection.lwa_client_secret_encrypted = crypto.encrypt(settings, secret)
    connection.lwa_refresh_token_encrypted = crypto.encrypt(settings, token)
    connection.credentials_updated_at = utcnow()


async def create_connection(
    session: AsyncSession, settings: Settings, caller: Caller, data: ConnectionCreate
) -> VendorConnection:
    """Create a connection; its secrets are stored only encrypted and its first scheduled sync is one interval away."""
    if await connections.name_taken(session, caller.account_id, data.name):
        raise _name_taken(data.name)
    now = utcnow()
    connection = VendorConnection(
        name=data.name,
        region=data.region.value,
        endpoint=data.endpoint,
        marketplaces=[m.value for m in data.marketplaces],
        vendor_codes=list(data.vendor_codes),
        credentials_rotate_by=data.credentials_rotate_by,
        sync_schedule=data.sync_schedule,
        next_sync_at=next_run(data.sync_schedule, now),
        status=data.status.value,
    )
    _set_credentials(settings, connection, data.client_id, data.client_secret, data.refresh_token)
    connections.add(session, caller.account_id, connection)
    await session.flush()
    await session.refresh(connection)
    audit.record(
        session,
        caller,
        "connection.created",
        "connection",
        connection.id,
        after=audit.snapshot(connection, AUDITED_FIELDS),
    )
    return connection


async def get_connection(session: AsyncSession, caller: Caller, connection_id: uuid.UUID) -> VendorConnection:
    return await connections.get(session, caller.account_id, connection_id)


async def list_connections(
    session: AsyncSession, caller: Caller, page: PageParams, *, status: str | None
) -> Slice[VendorConnection]:
    return await connections.page(session, connections.filtered(caller.account_id, status=status), page)


async def update_connection(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    connection_id: uuid.UUID,
    data: ConnectionUpdate,
    *,
    if_match: int | None,
) -> VendorConnection:
    """Change a connection; a stale ``version`` (or If-Match) is refused so no update is lost."""
    connection = await connections.get_for_update(session, caller.account_id, connection_id)
    require_version("connection", connection.version, version=data.version, if_match=if_match)
    before = audit.snapshot(connection, AUDITED_FIELDS)
    fields = data.model_dump(exclude_unset=True, exclude={"version", "client_id", "client_secret", "refresh_token"})
    if "name" in fields and await connections.name_taken(
        session, caller.account_id, fields["name"], except_id=connection.id
    ):
        raise _name_taken(fields["name"])
    for name, value in fields.items():
        if name == "marketplaces":
            value = [m.value if hasattr(m, "value") else m for m in data.marketplaces or []]
        elif name == "status":
            value = data.status.value if data.status else value
        setattr(connection, name, value)
    if "sync_schedule" in fields:
        connection.next_sync_at = next_run(connection.sync_schedule, utcnow())
    credentials_changed = data.client_id is not None
    if data.client_id is not None and data.client_secret is not None and data.refresh_token is not None:
        _set_credentials(settings, connection, data.client_id, data.client_secret, data.refresh_token)
    if credentials_changed and connection.status == "error":
        connection.status = "active"
    await session.flush()
    await session.refresh(connection)
    after = audit.snapshot(connection, AUDITED_FIELDS)
    if credentials_changed:
        after["credentials_updated_at"] = connection.credentials_updated_at
    audit.record(session, caller, "connection.updated", "connection", connection.id, before=before, after=after)
    return connection


async def delete_connection(session: AsyncSession, caller: Caller, connection_id: uuid.UUID) -> None:
    """Remove a connection: its secrets are erased, its runs stop, the data it produced stays as evidence."""
    connection = await connections.get_for_update(session, caller.account_id, connection_id)
    before = audit.snapshot(connection, AUDITED_FIELDS)
    now = utcnow()
    connection.deleted_at = now
    connection.lwa_client_id_encrypted = b""
    connection.lwa_client_secret_encrypted = b""
    connection.lwa_refresh_token_encrypted = b""
    connection.next_sync_at = None
    for kind in ("orders", "order_status", "shipments", "reports"):
        run = await sync_runs.active(session, caller.account_id, connection.id, kind)
        if run is not None and run.status == "queued":
            run.status, run.finished_at = "failed", now
            run.error = {"code": "connection_deleted", "message": "The connection was deleted."}
    await session.flush()
    audit.record(session, caller, "connection.deleted", "connection", connection.id, before=before)


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    latency_ms: int
    request_id: str | None
    error_code: str | None
    error_message: str | None


async def check_connection(
    session: AsyncSession, settings: Settings, redis: Redis, caller: Caller, connection_id: uuid.UUID
) -> CheckOutcome:
    """Exchange the refresh token for an access token and make one cheap call (one PO over the last day)."""
    connection = await connections.get(session, caller.account_id, connection_id)
    started = time.monotonic()
    async with httpx.AsyncClient() as http:
        try:
            client = make_client(
                settings,
                redis,
                http,
                LwaTokenCache(),
                connection,
                retry=RetryPolicy(max_attempts=2, timeout=10.0, base_delay=0.2),
            )
            now = utcnow()
            pages = client.iter_purchase_orders(created_after=now - timedelta(days=1), created_before=now, limit=1)
            page = await anext(aiter(pages))
            await pages.aclose()  # type: ignore[attr-defined]
        except SpApiError as exc:
            return CheckOutcome(
                ok=False,
                latency_ms=round((time.monotonic() - started) * 1000),
                request_id=exc.request_id,
                error_code=exc.code or exc.kind,
                error_message=exc.message,
            )
        except crypto.SecretsUnreadable as exc:
            return CheckOutcome(False, 0, None, "secrets_unreadable", str(exc))
    return CheckOutcome(True, round((time.monotonic() - started) * 1000), page.request_id, None, None)


# ---------------------------------------------------------------- sync runs


def _default_range(kind: str, last: SyncRun | None, now: datetime) -> tuple[str, datetime]:
    if last is not None and kind in ("orders", "order_status"):
        return "changed", min(last.range_to - INCREMENTAL_OVERLAP, now - timedelta(minutes=1))
    if last is not None:
        return "created", min(last.range_to - INCREMENTAL_OVERLAP, now - timedelta(minutes=1))
    if kind == "reports":
        return "created", now - timedelta(days=7)
    return "created", now - INITIAL_LOOKBACK


async def start_sync(
    session: AsyncSession,
    account_id: uuid.UUID,
    connection: VendorConnection,
    data: SyncRunCreate,
    *,
    trigger: str = "manual",
) -> tuple[SyncRun, bool]:
    """Queue a sync run, or return the one of that kind already queued or running (``False``)."""
    kind = data.kind.value
    existing = await sync_runs.active(session, account_id, connection.id, kind)
    if existing is not None:
        return existing, False
    now = utcnow()
    to = data.to or now
    if data.from_ is not None:
        range_field = data.range_field.value if data.range_field else "created"
        start = data.from_
    else:
        last = await sync_runs.last_succeeded(session, account_id, connection.id, kind)
        default_field, start = _default_range(kind, last, to)
        range_field = data.range_field.value if data.range_field else default_field
    if kind == "shipments":
        range_field = "created"  # GetShipmentDetails has no "changed" filter
    if start >= to:
        start = to - timedelta(minutes=1)
    run = SyncRun(
        connection_id=connection.id,
        kind=kind,
        status="queued",
        trigger=trigger,
        range_field=range_field,
        range_from=start,
        range_to=to,
    )
    try:
        async with session.begin_nested():
            sync_runs.add(session, account_id, run)
            await session.flush()
    except IntegrityError:
        # another request queued one between our check and our insert: answer with that one
        existing = await sync_runs.active(session, account_id, connection.id, kind)
        if existing is None:
            raise
        return existing, False
    await session.refresh(run)
    enqueue_after_commit(session, RUN_SYNC_JOB, str(account_id), str(run.id), job_id=f"sync:{run.id}:0")
    return run, True


async def request_sync(
    session: AsyncSession, caller: Caller, connection_id: uuid.UUID, data: SyncRunCreate
) -> tuple[SyncRun, bool]:
    """Start a sync of one kind; while one of that kind is queued or running, return it instead."""
    connection = await connections.get(session, caller.account_id, connection_id)
    run, created = await start_sync(session, caller.account_id, connection, data)
    if created:
        audit.record(
            session,
            caller,
            "sync_run.created",
            "sync_run",
            run.id,
            after={
                "connection_id": connection.id,
                "kind": run.kind,
                "range_from": run.range_from,
                "range_to": run.range_to,
            },
        )
    return run, created


async def schedule_due(session: AsyncSession, now: datetime | None = None) -> list[SyncRun]:
    """Queue the orders sync of every connection whose schedule is due (system-wide, for the cron)."""
    now = now or utcnow()
    queued: list[SyncRun] = []
    for connection in await connections.due_for_schedule(session, now):
        run, created = await start_sync(
            session, connection.account_id, connection, SyncRunCreate(kind=SyncKind.orders), trigger="schedule"
        )
        await connections.schedule_next(
            session, connection.account_id, connection.id, next_run(connection.sync_schedule, now)
        )
        if created:
            queued.append(run)
    await session.flush()
    return queued


async def get_sync_run(session: AsyncSession, caller: Caller, run_id: uuid.UUID) -> SyncRun:
    return await sync_runs.get(session, caller.account_id, run_id)


async def list_sync_runs(
    session: AsyncSession,
    caller: Caller,
    page: PageParams,
    *,
    connection_id: uuid.UUID | None,
    kind: str | None,
    status: str | None,
) -> Slice[SyncRun]:
    stmt = sync_runs.filtered(caller.account_id, connection_id=connection_id, kind=kind, status=status)
    return await sync_runs.page(session, stmt, page)


# ---------------------------------------------------------------- reads


async def list_purchase_orders(
    session: AsyncSession,
    caller: Caller,
    page: PageParams,
    *,
    store_id: uuid.UUID | None,
    state: str | None,
    ordered_after: datetime | None,
    ordered_before: datetime | None,
    asin: str | None,
    vendor_code: str | None,
) -> Slice[PurchaseOrder]:
    stmt = purchase_orders.filtered(
        caller.account_id,
        store_id=store_id,
        state=state,
        ordered_after=ordered_after,
        ordered_before=ordered_before,
        asin=asin,
        vendor_code=vendor_code,
    )
    return await purchase_orders.page(session, stmt, page)


async def get_purchase_order(
    session: AsyncSession, caller: Caller, number: str
) -> tuple[PurchaseOrder, list[PurchaseOrderItem]]:
    po = await purchase_orders.by_number(session, caller.account_id, number)
    if po is None:
        raise NotFound(f"No purchase order {number!r} in this account.")
    return po, await purchase_orders.items(session, caller.account_id, po.id)


async def list_shipments(
    session: AsyncSession,
    caller: Caller,
    page: PageParams,
    *,
    purchase_order_number: str | None,
    status: str | None,
    vendor_code: str | None,
) -> Slice[Shipment]:
    stmt = shipments.filtered(
        caller.account_id, purchase_order_number=purchase_order_number, status=status, vendor_code=vendor_code
    )
    return await shipments.page(session, stmt, page)


async def get_raw_document(session: AsyncSession, caller: Caller, document_id: uuid.UUID) -> tuple[RawDocument, Any]:
    """The document's metadata and its decompressed payload (parsed when it is JSON)."""
    document = await raw_documents.get_with_content(session, caller.account_id, document_id)
    content = decompress(document)
    try:
        payload: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = content.decode("utf-8", errors="replace")
    return document, payload


# ---------------------------------------------------------------- invoice submissions


def invoice_payload(data: InvoiceSubmissionCreate, total: Decimal) -> dict[str, Any]:
    """The submitInvoices wire shape of an ERP invoice."""
    items = []
    for item in data.items:
        line: dict[str, Any] = {
            "itemSequenceNumber": item.item_sequence_number,
            "invoicedQuantity": {"amount": item.quantity, "unitOfMeasure": "Eaches"},
            "netCost": {"currencyCode": data.currency, "amount": format(item.net_cost, "f")},
            "purchaseOrderNumber": item.purchase_order_number,
        }
        if item.asin:
            line["amazonProductIdentifier"] = item.asin
        if item.vendor_sku:
            line["vendorProductIdentifier"] = item.vendor_sku
        items.append(line)
    return {
        "invoiceType": data.invoice_type.value,
        "id": data.invoice_number,
        "date": format_datetime(data.date),
        "remitToParty": {"partyId": data.remit_to_party_id},
        "invoiceTotal": {"currencyCode": data.currency, "amount": format(total, "f")},
        "items": items,
    }


async def create_invoice_submission(
    session: AsyncSession, caller: Caller, data: InvoiceSubmissionCreate
) -> InvoiceSubmission:
    """Record the invoice and queue its submission; one submission per invoice number and connection."""
    connection = await connections.get(session, caller.account_id, data.connection_id)
    if await invoice_submissions.number_taken(session, caller.account_id, connection.id, data.invoice_number):
        raise Conflict(
            f"Invoice {data.invoice_number!r} was already submitted through this connection.",
            code="invoice_already_submitted",
            errors=[field_error(["body", "invoice_number"], "already submitted", "unique")],
        )
    total = (
        data.total
        if data.total is not None
        else quantize(sum((i.net_cost * i.quantity for i in data.items), Decimal(0)))
    )
    submission = invoice_submissions.add(
        session,
        caller.account_id,
        InvoiceSubmission(
            connection_id=connection.id,
            invoice_number=data.invoice_number,
            invoice_type=data.invoice_type.value,
            purchase_order_numbers=sorted({i.purchase_order_number for i in data.items}),
            currency=data.currency,
            total_amount=total,
            payload=invoice_payload(data, total),
            status="queued",
        ),
    )
    await session.flush()
    await session.refresh(submission)
    audit.record(
        session,
        caller,
        "invoice_submission.created",
        "invoice_submission",
        submission.id,
        after={"invoice_number": data.invoice_number, "total": total, "currency": data.currency},
    )
    enqueue_after_commit(
        session, SUBMIT_INVOICE_JOB, str(caller.account_id), str(submission.id), job_id=f"invoice:{submission.id}"
    )
    return submission


async def get_invoice_submission(session: AsyncSession, caller: Caller, submission_id: uuid.UUID) -> InvoiceSubmission:
    return await invoice_submissions.get(session, caller.account_id, submission_id)


async def list_invoice_submissions(
    session: AsyncSession, caller: Caller, page: PageParams, *, connection_id: uuid.UUID | None, status: str | None
) -> Slice[InvoiceSubmission]:
    stmt = invoice_submissions.filtered(caller.account_id, connection_id=connection_id, status=status)
    return await invoice_submissions.page(session, stmt, page)
