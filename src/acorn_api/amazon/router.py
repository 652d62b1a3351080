"""HTTP for connections, sync runs, purchase orders, shipments, raw documents and invoice submissions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from acorn_api.amazon import connections_service, reads_service, submissions_service, sync_service
from acorn_api.amazon.auth import ConnectionsRead, ConnectionsWrite, LedgerRead, SyncRun
from acorn_api.amazon.connections_service import connection_out
from acorn_api.amazon.models import InvoiceSubmission, PurchaseOrder, PurchaseOrderItem
from acorn_api.amazon.schemas import (
    ConnectionCreate,
    ConnectionDeleted,
    ConnectionOut,
    ConnectionStatus,
    ConnectionTestResult,
    ConnectionUpdate,
    InvoiceSubmissionCreate,
    InvoiceSubmissionOut,
    PurchaseOrderDetail,
    PurchaseOrderItemOut,
    PurchaseOrderOut,
    RawDocumentOut,
    ShipmentOut,
    SubmissionStatus,
    SyncKind,
    SyncRunCreate,
    SyncRunOut,
    SyncStatus,
    Window,
)
from acorn_api.core.db import Resources, Session, get_resources
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import problems
from acorn_api.core.http import IfMatch
from acorn_api.core.idempotency import IdempotencyDep
from acorn_api.core.money import Money
from acorn_api.core.pagination import Page, Pagination
from acorn_api.core.time import UTCDateTime

router = APIRouter()
Resourced = Annotated[Resources, Depends(get_resources)]


def _money(amount: Any, currency: str | None) -> Money | None:
    return Money(amount=amount, currency=currency) if amount is not None and currency else None


def _window(start: datetime | None, end: datetime | None) -> Window | None:
    return Window(start=start, end=end) if start is not None and end is not None else None


def purchase_order_out(po: PurchaseOrder) -> dict[str, Any]:
    return {
        "id": po.id,
        "purchase_order_number": po.purchase_order_number,
        "state": po.state,
        "purchase_order_type": po.purchase_order_type,
        "purchase_order_date": po.purchase_order_date,
        "changed_at": po.changed_at,
        "state_changed_at": po.state_changed_at,
        "vendor_code": po.vendor_code,
        "store_id": po.store_id,
        "connection_id": po.connection_id,
        "buying_party_id": po.buying_party_id,
        "ship_to_party_id": po.ship_to_party_id,
        "bill_to_party_id": po.bill_to_party_id,
        "deal_code": po.deal_code,
        "payment_method": po.payment_method,
        "ship_window": _window(po.ship_window_start, po.ship_window_end),
        "delivery_window": _window(po.delivery_window_start, po.delivery_window_end),
        "total_net_cost": _money(po.total_net_cost, po.currency),
        "purchase_order_status": po.purchase_order_status,
        "status_updated_at": po.status_updated_at,
        "raw_document_id": po.raw_document_id,
        "status_raw_document_id": po.status_raw_document_id,
        "created_at": po.created_at,
        "updated_at": po.updated_at,
    }


def item_out(item: PurchaseOrderItem) -> PurchaseOrderItemOut:
    return PurchaseOrderItemOut(
        item_sequence_number=item.item_sequence_number,
        asin=item.asin,
        vendor_sku=item.vendor_sku,
        ordered_quantity=item.ordered_quantity,
        unit_of_measure=item.unit_of_measure,
        unit_size=item.unit_size,
        is_back_order_allowed=item.is_back_order_allowed,
        net_cost=_money(item.net_cost, item.currency),
        list_price=_money(item.list_price, item.currency),
        confirmation_status=item.confirmation_status,
        acknowledged_quantity=item.acknowledged_quantity,
        rejected_quantity=item.rejected_quantity,
        cancelled_quantity=item.cancelled_quantity,
        receive_status=item.receive_status,
        received_quantity=item.received_quantity,
        last_received_at=item.last_received_at,
    )


def submission_out(submission: InvoiceSubmission) -> InvoiceSubmissionOut:
    return InvoiceSubmissionOut(
        id=submission.id,
        connection_id=submission.connection_id,
        invoice_number=submission.invoice_number,
        invoice_type=submission.invoice_type,
        purchase_order_numbers=list(submission.purchase_order_numbers),
        total=Money(amount=submission.total_amount, currency=submission.currency),
        status=SubmissionStatus(submission.status),
        transaction_id=submission.transaction_id,
        transaction_status=submission.transaction_status,
        errors=list(submission.errors or []),
        request_id=submission.request_id,
        submitted_at=submission.submitted_at,
        completed_at=submission.completed_at,
        raw_document_id=submission.raw_document_id,
        created_at=submission.created_at,
        updated_at=submission.updated_at,
    )


# ---------------------------------------------------------------- connections


@router.post(
    "/v1/connections",
    status_code=status.HTTP_201_CREATED,
    summary="Add an Amazon SP-API connection",
    description="The LWA `client_id`, `client_secret` and `refresh_token` are write-only: stored encrypted, "
    "never returned.",
    operation_id="create_connection",
    tags=["connections"],
    responses=problems(403, 409),
)
async def create_connection(
    body: ConnectionCreate, caller: ConnectionsWrite, session: Session, settings: AppSettings, idem: IdempotencyDep
) -> ConnectionOut:
    async def create() -> ConnectionOut:
        return connection_out(await connections_service.create_connection(session, settings, caller, body))

    return await idem.run(caller.account_id, ConnectionOut, create)


@router.get(
    "/v1/connections",
    summary="List connections",
    operation_id="list_connections",
    tags=["connections"],
    responses=problems(403),
)
async def list_connections(
    caller: ConnectionsRead,
    session: Session,
    page: Pagination,
    status_: Annotated[ConnectionStatus | None, Query(alias="status")] = None,
) -> Page[ConnectionOut]:
    result = await connections_service.list_connections(
        session, caller, page, status=status_.value if status_ else None
    )
    return Page.of(result, connection_out)


@router.get(
    "/v1/connections/{connection_id}",
    summary="Get a connection",
    operation_id="get_connection",
    tags=["connections"],
    responses=problems(403, 404),
)
async def get_connection(
    connection_id: uuid.UUID, caller: ConnectionsRead, session: Session, response: Response
) -> ConnectionOut:
    connection = await connections_service.get_connection(session, caller, connection_id)
    response.headers["ETag"] = f'"{connection.version}"'
    return connection_out(connection)


@router.patch(
    "/v1/connections/{connection_id}",
    summary="Change a connection",
    description="Send only the fields to change; new credentials replace all three secrets. Pass the `version` "
    "you read (or `If-Match`) to refuse lost updates.",
    operation_id="update_connection",
    tags=["connections"],
    responses=problems(403, 404, 409, 412),
)
async def update_connection(
    connection_id: uuid.UUID,
    body: ConnectionUpdate,
    caller: ConnectionsWrite,
    session: Session,
    settings: AppSettings,
    if_match: IfMatch,
    response: Response,
) -> ConnectionOut:
    connection = await connections_service.update_connection(
        session, settings, caller, connection_id, body, if_match=if_match
    )
    response.headers["ETag"] = f'"{connection.version}"'
    return connection_out(connection)


@router.delete(
    "/v1/connections/{connection_id}",
    summary="Delete a connection",
    description="Erases the credentials and stops its syncs. Purchase orders, shipments, runs and documents it "
    "produced are kept as evidence.",
    operation_id="delete_connection",
    tags=["connections"],
    responses=problems(403, 404),
)
async def delete_connection(connection_id: uuid.UUID, caller: ConnectionsWrite, session: Session) -> ConnectionDeleted:
    await connections_service.delete_connection(session, caller, connection_id)
    return ConnectionDeleted(id=connection_id, deleted=True)


@router.post(
    "/v1/connections/{connection_id}/test",
    summary="Test a connection against Amazon",
    description="Exchanges the refresh token at LWA and makes one cheap call (getPurchaseOrders, limit 1, last "
    "day). The outcome is in the body: `ok`, latency, Amazon's request id, or the error code and message.",
    operation_id="test_connection",
    tags=["connections"],
    responses=problems(403, 404),
)
async def test_connection(
    connection_id: uuid.UUID, caller: ConnectionsWrite, session: Session, settings: AppSettings, resources: Resourced
) -> ConnectionTestResult:
    outcome = await connections_service.check_connection(session, settings, resources.redis, caller, connection_id)
    return ConnectionTestResult(
        ok=outcome.ok,
        latency_ms=outcome.latency_ms,
        request_id=outcome.request_id,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
    )


# ---------------------------------------------------------------- sync runs


@router.post(
    "/v1/connections/{connection_id}/syncs",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a sync",
    description="Queues a sync run of one kind and answers 202 with it and a `Location`. Only one run of a kind "
    "per connection is queued or running at a time: while one is, this answers **200 with that run** instead of "
    "starting another. Without `from`, orders and statuses sync incrementally (changed since the last successful "
    "run) or, the first time, the last 181 days (six months).",
    operation_id="start_sync",
    tags=["sync-runs"],
    responses={
        200: {"model": SyncRunOut, "description": "a run of this kind is already queued or running: that run"},
        **problems(403, 404),
    },
)
async def start_sync(
    connection_id: uuid.UUID,
    body: SyncRunCreate,
    caller: SyncRun,
    session: Session,
    request: Request,
    response: Response,
    idem: IdempotencyDep,
) -> SyncRunOut:
    created = True

    async def create() -> SyncRunOut:
        nonlocal created
        run, created = await sync_service.request_sync(session, caller, connection_id, body)
        return SyncRunOut.model_validate(run)

    out = await idem.run(caller.account_id, SyncRunOut, create)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = str(request.url_for("get_sync_run", run_id=out.id).path)
    return out


@router.get(
    "/v1/sync-runs",
    summary="List sync runs",
    operation_id="list_sync_runs",
    tags=["sync-runs"],
    responses=problems(403),
)
async def list_sync_runs(
    caller: ConnectionsRead,
    session: Session,
    page: Pagination,
    connection_id: uuid.UUID | None = None,
    kind: SyncKind | None = None,
    status_: Annotated[SyncStatus | None, Query(alias="status")] = None,
) -> Page[SyncRunOut]:
    result = await sync_service.list_sync_runs(
        session,
        caller,
        page,
        connection_id=connection_id,
        kind=kind.value if kind else None,
        status=status_.value if status_ else None,
    )
    return Page.of(result, SyncRunOut.model_validate)


@router.get(
    "/v1/sync-runs/{run_id}",
    summary="Get a sync run",
    operation_id="get_sync_run",
    tags=["sync-runs"],
    responses=problems(403, 404),
)
async def get_sync_run(run_id: uuid.UUID, caller: ConnectionsRead, session: Session) -> SyncRunOut:
    return SyncRunOut.model_validate(await sync_service.get_sync_run(session, caller, run_id))


# ---------------------------------------------------------------- purchase orders, shipments, documents


@router.get(
    "/v1/purchase-orders",
    summary="List purchase orders",
    operation_id="list_purchase_orders",
    tags=["purchase-orders"],
    responses=problems(403),
)
async def list_purchase_orders(
    caller: LedgerRead,
    session: Session,
    page: Pagination,
    store_id: uuid.UUID | None = None,
    state: Annotated[str | None, Query(pattern="^(New|Acknowledged|Closed)$")] = None,
    ordered_after: Annotated[UTCDateTime | None, Query(description="purchase order date ≥ this")] = None,
    ordered_before: Annotated[UTCDateTime | None, Query(description="purchase order date < this")] = None,
    asin: Annotated[str | None, Query(max_length=20)] = None,
    vendor_code: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[PurchaseOrderOut]:
    result = await reads_service.list_purchase_orders(
        session,
        caller,
        page,
        store_id=store_id,
        state=state,
        ordered_after=ordered_after,
        ordered_before=ordered_before,
        asin=asin,
        vendor_code=vendor_code,
    )
    return Page.of(result, lambda po: PurchaseOrderOut(**purchase_order_out(po)))


@router.get(
    "/v1/purchase-orders/{po_number}",
    summary="Get a purchase order with its items",
    description="Items carry ordered, acknowledged and received quantities; `raw_document_id` names the archived "
    "Amazon payload this version came from.",
    operation_id="get_purchase_order",
    tags=["purchase-orders"],
    responses=problems(403, 404),
)
async def get_purchase_order(
    po_number: Annotated[str, Path(min_length=1, max_length=64)], caller: LedgerRead, session: Session
) -> PurchaseOrderDetail:
    po, items = await reads_service.get_purchase_order(session, caller, po_number)
    return PurchaseOrderDetail(**purchase_order_out(po), items=[item_out(i) for i in items])


@router.get(
    "/v1/shipments",
    summary="List shipments (ASNs)",
    operation_id="list_shipments",
    tags=["shipments"],
    responses=problems(403),
)
async def list_shipments(
    caller: LedgerRead,
    session: Session,
    page: Pagination,
    purchase_order_number: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=40)] = None,
    vendor_code: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[ShipmentOut]:
    result = await reads_service.list_shipments(
        session, caller, page, purchase_order_number=purchase_order_number, status=status_, vendor_code=vendor_code
    )
    return Page.of(result, ShipmentOut.model_validate)


@router.get(
    "/v1/raw-documents/{document_id}",
    summary="Get an archived raw document",
    description="Metadata (hash, sizes, source, Amazon request id) and the decompressed payload; a document "
    "larger than the server's inline limit comes without it (`payload_included` false).",
    operation_id="get_raw_document",
    tags=["raw-documents"],
    responses=problems(403, 404),
)
async def get_raw_document(
    document_id: uuid.UUID, caller: LedgerRead, session: Session, settings: AppSettings
) -> RawDocumentOut:
    document, payload, included = await reads_service.get_raw_document(session, settings, caller, document_id)
    return RawDocumentOut(
        id=document.id,
        sha256=document.sha256,
        source=document.source,
        content_type=document.content_type,
        compression=document.compression,
        size_bytes=document.size_bytes,
        compressed_bytes=document.compressed_bytes,
        request_id=document.request_id,
        fetched_at=document.fetched_at,
        metadata=dict(document.metadata_ or {}),
        payload=payload,
        payload_included=included,
        created_at=document.created_at,
    )


# ---------------------------------------------------------------- invoice submissions


@router.post(
    "/v1/invoice-submissions",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit an invoice to Amazon",
    description="Queues submitInvoices for the invoice, then polls Amazon's transaction until Success or "
    "Failure; poll this resource (`status`: queued → submitted → succeeded | failed).",
    operation_id="create_invoice_submission",
    tags=["invoice-submissions"],
    responses=problems(403, 404, 409),
)
async def create_invoice_submission(
    body: InvoiceSubmissionCreate,
    caller: SyncRun,
    session: Session,
    request: Request,
    response: Response,
    idem: IdempotencyDep,
) -> InvoiceSubmissionOut:
    async def create() -> InvoiceSubmissionOut:
        return submission_out(await submissions_service.create_invoice_submission(session, caller, body))

    out = await idem.run(caller.account_id, InvoiceSubmissionOut, create)
    response.headers["Location"] = str(request.url_for("get_invoice_submission", submission_id=out.id).path)
    return out


@router.get(
    "/v1/invoice-submissions",
    summary="List invoice submissions",
    operation_id="list_invoice_submissions",
    tags=["invoice-submissions"],
    responses=problems(403),
)
async def list_invoice_submissions(
    caller: LedgerRead,
    session: Session,
    page: Pagination,
    connection_id: uuid.UUID | None = None,
    status_: Annotated[SubmissionStatus | None, Query(alias="status")] = None,
) -> Page[InvoiceSubmissionOut]:
    result = await submissions_service.list_invoice_submissions(
        session, caller, page, connection_id=connection_id, status=status_.value if status_ else None
    )
    return Page.of(result, submission_out)


@router.get(
    "/v1/invoice-submissions/{submission_id}",
    summary="Get an invoice submission",
    operation_id="get_invoice_submission",
    tags=["invoice-submissions"],
    responses=problems(403, 404),
)
async def get_invoice_submission(
    submission_id: uuid.UUID, caller: LedgerRead, session: Session
) -> InvoiceSubmissionOut:
    return submission_out(await submissions_service.get_invoice_submission(session, caller, submission_id))


@router.post(
    "/v1/invoice-submissions/{submission_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry a failed invoice submission",
    description="Queues a `failed` submission again and answers 202 with it. If Amazon had given it a transaction, "
    "that transaction is checked first: Success or Processing is followed, and only a Failure is submitted again "
    "(so an invoice Amazon may have accepted is not sent twice). Any other status answers 409. "
    "Transient failures (5xx, timeouts) are retried automatically with backoff before a submission is `failed`.",
    operation_id="retry_invoice_submission",
    tags=["invoice-submissions"],
    responses=problems(403, 404, 409),
)
async def retry_invoice_submission(
    submission_id: uuid.UUID, caller: SyncRun, session: Session, request: Request, response: Response
) -> InvoiceSubmissionOut:
    submission = await submissions_service.retry_invoice_submission(session, caller, submission_id)
    response.headers["Location"] = str(request.url_for("get_invoice_submission", submission_id=submission.id).path)
    return submission_out(submission)
