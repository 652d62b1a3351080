"""HTTP for /v1/reconciliation and /v1/analytics: parse, call the service, shape the answer."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from acorn_api.core.db import Session, get_resources
from acorn_api.core.errors import problems
from acorn_api.core.idempotency import IdempotencyDep
from acorn_api.core.money import CurrencyCode
from acorn_api.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from acorn_api.reconciliation import repository as repo
from acorn_api.reconciliation import service
from acorn_api.reconciliation.auth import ReconciliationRead, ReconciliationWrite
from acorn_api.reconciliation.models import BalanceStatus
from acorn_api.reconciliation.schemas import (
    AgingOut,
    DeductionGroupBy,
    DeductionTrends,
    Interval,
    InvoicePage,
    IsoDate,
    JournalPage,
    PurchaseOrderTrends,
    RunCreate,
    RunOut,
    SuggestionKind,
    SuggestionList,
    SummaryGroupBy,
    SummaryOut,
    UnmatchedPage,
)

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])
analytics_router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size, 1-200")]
Cursor = Annotated[str | None, Query(max_length=512, description="opaque cursor from the previous page")]
VendorCode = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
DateFrom = Annotated[IsoDate | None, Query(alias="from", description="first invoice date (inclusive)")]
DateTo = Annotated[IsoDate | None, Query(alias="to", description="last invoice date (inclusive)")]


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a full matching run",
    description="Queues a full re-match of every invoice and answers 202 with the run and a `Location`. While a "
    "full run is queued or running this answers **200 with that run** instead. Imports start incremental runs "
    "on their own.",
    operation_id="start_reconciliation_run",
    responses={
        200: {"model": RunOut, "description": "a full run is already queued or running: that run"},
        **problems(403),
    },
)
async def start_run(
    body: RunCreate,
    caller: ReconciliationWrite,
    session: Session,
    request: Request,
    response: Response,
    idem: IdempotencyDep,
) -> RunOut:
    created = True

    async def create() -> RunOut:
        nonlocal created
        run, created = await service.request_run(session, caller, body)
        return RunOut.model_validate(run)

    out = await idem.run(caller.account_id, RunOut, create)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = str(request.url_for("get_reconciliation_run", reconciliation_run_id=out.id).path)
    return out


@router.get(
    "/runs/{reconciliation_run_id}",
    summary="Get a matching run",
    operation_id="get_reconciliation_run",
    responses=problems(403, 404),
)
async def get_reconciliation_run(
    reconciliation_run_id: uuid.UUID, caller: ReconciliationRead, session: Session
) -> RunOut:
    return RunOut.model_validate(await service.get_run(session, caller, reconciliation_run_id))


@router.get(
    "/invoices",
    summary="List invoice balances",
    description="Every invoice with where its money is (`invoiced = paid + deducted − reversed + written_off + "
    "open_balance`) and its status, newest invoice first. `format=csv` streams every matching row as CSV "
    "(no paging).",
    operation_id="list_invoice_balances",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "a page, or the CSV"},
        **problems(403),
    },
)
async def list_invoices(
    caller: ReconciliationRead,
    session: Session,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status_: Annotated[list[BalanceStatus] | None, Query(alias="status")] = None,
    store_id: uuid.UUID | None = None,
    vendor_code: VendorCode = None,
    currency: CurrencyCode | None = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    min_open_balance: Annotated[Decimal | None, Query(max_digits=20, decimal_places=4)] = None,
    format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> InvoicePage:
    filters = repo.BalanceFilters(
        status=[s.value for s in status_] if status_ else None,
        store_id=store_id,
        vendor_code=vendor_code,
        currency=currency,
        date_from=date_from,
        date_to=date_to,
        min_open_balance=min_open_balance,
    )
    if format_ == "csv":
        return StreamingResponse(  # type: ignore[return-value]
            _csv_rows(request, caller.account_id, filters),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="invoice-balances.csv"'},
        )
    data, next_cursor, has_more = await service.list_invoices(session, caller, filters, limit=limit, cursor=cursor)
    return InvoicePage(data=data, next_cursor=next_cursor, has_more=has_more)


async def _csv_rows(request: Request, account_id: uuid.UUID, filters: repo.BalanceFilters) -> AsyncIterator[str]:
    # The request's session is closed once the route returns; the stream reads with its own.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(service.CSV_COLUMNS)
    async with get_resources(request).sessionmaker() as session:
        async for batch in repo.stream_balances(session, account_id, filters):
            for row in batch:
                writer.writerow(service.csv_values(row))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


@router.get(
    "/summary",
    summary="Reconciliation totals per group",
    description="Invoiced, paid, deducted, disputed, recovered, written off and open amounts of the invoices dated "
    "in the range, per group and **per currency** (never summed across currencies). With `report_currency`, "
    "each currency is converted at the latest exchange rate found in the imported remittances, and `rates_used` "
    "states each rate; a currency with no known rate is a 422.",
    operation_id="get_reconciliation_summary",
    responses=problems(403),
)
async def get_summary(
    caller: ReconciliationRead,
    session: Session,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    group_by: SummaryGroupBy = SummaryGroupBy.none,
    store_id: uuid.UUID | None = None,
    vendor_code: VendorCode = None,
    report_currency: CurrencyCode | None = None,
) -> SummaryOut:
    return await service.summary(
        session,
        caller,
        group_by=group_by.value,
        date_from=date_from,
        date_to=date_to,
        store_id=store_id,
        vendor_code=vendor_code,
        report_currency=report_currency,
    )


@router.get(
    "/aging",
    summary="Open balances and deductions by age",
    description="Open balances and open deductions per currency in buckets of days past the due date "
    "(`not_due`, `0_30`, `31_60`, `61_90`, `90_plus`).",
    operation_id="get_reconciliation_aging",
    responses=problems(403),
)
async def get_aging(
    caller: ReconciliationRead,
    session: Session,
    as_of: Annotated[IsoDate | None, Query(description="the day ages are counted to (default today)")] = None,
    store_id: uuid.UUID | None = None,
    vendor_code: VendorCode = None,
) -> AgingOut:
    return await service.aging(session, caller, as_of=as_of, store_id=store_id, vendor_code=vendor_code)


@router.get(
    "/unmatched-payments",
    summary="List payments for unknown invoices",
    description="Remittance lines that pay an invoice number no invoice carries, with up to three likely "
    "invoices ranked by amount, PO number and due date.",
    operation_id="list_unmatched_payments",
    responses=problems(403),
)
async def list_unmatched(
    caller: ReconciliationRead, session: Session, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> UnmatchedPage:
    return await service.list_unmatched(session, caller, limit=limit, cursor=cursor)


@router.get(
    "/suggestions",
    summary="What to do next, by money at stake",
    description="A ranked to-do list: dispute cases before their deadline, re-dispute partially recovered "
    "cases, chase unpaid invoices past due, investigate unexplained short payments, match payments to "
    "invoices. Each with its reason and the amount at stake, the largest first.",
    operation_id="list_reconciliation_suggestions",
    responses=problems(403),
)
async def list_suggestions(
    caller: ReconciliationRead,
    session: Session,
    limit: Limit = DEFAULT_LIMIT,
    kind: Annotated[list[SuggestionKind] | None, Query()] = None,
) -> SuggestionList:
    return await service.suggestions(session, caller, limit=limit, kinds=kind)


@router.get(
    "/journal",
    summary="Accounting lines for the ERP",
    description="A stable feed of balanced accounting lines (cash, receivable, deduction expense by type, "
    "recovery income) in the order they were journalised. Poll with the `next_cursor` of the previous "
    "answer as `since_cursor`: every line comes exactly once, and lines are never reordered or changed.",
    operation_id="get_reconciliation_journal",
    responses=problems(403),
)
async def get_journal(
    caller: ReconciliationRead,
    session: Session,
    since_cursor: Annotated[str | None, Query(max_length=20, description="the last cursor you posted")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="lines per answer, 1-1000")] = 200,
) -> JournalPage:
    return await service.journal(session, caller, since_cursor=since_cursor, limit=limit)


@analytics_router.get(
    "/deductions",
    summary="Deduction trends",
    description="Deducted amount, count, recovered amount and share of invoiced value per period, group and "
    "currency, from aggregates the matching job keeps up to date.",
    operation_id="get_deduction_trends",
    responses=problems(403),
)
async def get_deduction_trends(
    caller: ReconciliationRead,
    session: Session,
    interval: Interval = Interval.month,
    group_by: DeductionGroupBy = DeductionGroupBy.type,
    date_from: Annotated[IsoDate | None, Query(alias="from")] = None,
    date_to: Annotated[IsoDate | None, Query(alias="to")] = None,
) -> DeductionTrends:
    return await service.deduction_trends(
        session, caller, interval=interval.value, group_by=group_by.value, date_from=date_from, date_to=date_to
    )


@analytics_router.get(
    "/purchase-orders",
    summary="Purchase order trends",
    description="Ordered, acknowledged and received units, fill rate and PO cost per period (and ASIN), from "
    "the connector's purchase orders, aggregated by each full matching run.",
    operation_id="get_purchase_order_trends",
    responses=problems(403),
)
async def get_purchase_order_trends(
    caller: ReconciliationRead,
    session: Session,
    interval: Interval = Interval.month,
    group_by: Literal["asin", "none"] = "asin",
    asin: Annotated[str | None, Query(max_length=20, pattern=r"^[A-Za-z0-9]+$")] = None,
    date_from: Annotated[IsoDate | None, Query(alias="from")] = None,
    date_to: Annotated[IsoDate | None, Query(alias="to")] = None,
) -> PurchaseOrderTrends:
    return await service.purchase_order_trends(
        session,
        caller,
        interval=interval.value,
        by_asin=group_by == "asin",
        asin=asin,
        date_from=date_from,
        date_to=date_to,
    )
