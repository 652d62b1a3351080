"""HTTP for /v1/quotes, /v1/quote-policy, /v1/prices and /v1/items/{id}/price-history."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from acorn_api.core.db import Session, get_resources
from acorn_api.core.errors import AcornError, invalid_field, problems
from acorn_api.core.idempotency import IdempotencyDep
from acorn_api.core.pagination import Page, Pagination
from acorn_api.core.regions import Marketplace, Region
from acorn_api.core.time import utcnow
from acorn_api.quotes import conflicts, csv_io, policy, prices, service
from acorn_api.quotes.auth import QuotePolicyWrite, QuotesApprove, QuotesRead, QuotesWrite
from acorn_api.quotes.models import Quote, QuoteStatus, ScopeType
from acorn_api.quotes.schemas import (
    ConflictReport,
    EffectivePrice,
    ImportResult,
    PriceHistory,
    QuoteAction,
    QuoteApprove,
    QuoteCreate,
    QuoteEventList,
    QuoteEventOut,
    QuoteOut,
    QuotePolicyIn,
    QuotePolicyOut,
    QuoteReject,
    QuoteUpdate,
    QuoteWithConflicts,
)
from acorn_api.stores import service as stores_service

router = APIRouter(prefix="/v1/quotes", tags=["quotes"])
policy_router = APIRouter(prefix="/v1/quote-policy", tags=["quotes"])
prices_router = APIRouter(tags=["prices"])

MAX_IMPORT_BYTES = csv_io.MAX_IMPORT_BYTES


class UnsupportedMediaType(AcornError):
    status: ClassVar[int] = 415
    title: ClassVar[str] = "Unsupported media type"
    code: ClassVar[str] = "unsupported_media_type"


def _out(quote: Quote, response: Response) -> QuoteOut:
    response.headers["ETag"] = f'"{quote.version}"'
    return QuoteOut.model_validate(quote)


def _with_conflicts(outcome: service.Outcome, response: Response) -> QuoteWithConflicts:
    response.headers["ETag"] = f'"{outcome.quote.version}"'
    return QuoteWithConflicts.model_validate(
        {
            **QuoteOut.model_validate(outcome.quote).model_dump(),
            "conflicts": outcome.conflicts,
            "requires_finance_approval": outcome.requires_finance,
        }
    )


def _policy_out(p: policy.Policy) -> QuotePolicyOut:
    return QuotePolicyOut(
        finance_threshold_pct=p.finance_threshold_pct,
        hard_cap_pct=p.hard_cap_pct,
        conflict_tolerance_pct=p.conflict_tolerance_pct,
        version=p.version,
        is_default=p.is_default,
    )


# --- static paths first: they would otherwise be read as a {quote_id} -----------------------------------


@router.get(
    "/conflicts",
    summary="List channel price conflicts",
    description="Items whose effective prices across the active stores of one marketplace (same currency) differ "
    "by more than the policy's `conflict_tolerance_pct`, evaluated at 00:00 UTC of `on` (default: now); and "
    "approved quotes of one item and scope whose periods overlap (legacy data: new data cannot overlap).",
    operation_id="list_quote_conflicts",
    responses=problems(403),
)
async def list_conflicts(
    caller: QuotesRead,
    session: Session,
    on: Annotated[
        str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description="the day to check; default: now")
    ] = None,
    item_id: uuid.UUID | None = None,
    marketplace: Marketplace | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConflictReport:
    at = _day_start(on) if on else utcnow()
    rules = await policy.current(session, caller)
    return await conflicts.report(
        session,
        caller.account_id,
        at,
        rules.conflict_tolerance_pct,
        item_id=item_id,
        marketplace=marketplace.value if marketplace else None,
        limit=limit,
    )


IMPORT_DESCRIPTION = (
    "Creates one **draft** quote per row — all rows or none. Send the file as `multipart/form-data` (field "
    "`file`) or as a `text/csv` body. Any bad row answers 422 `csv-rows-invalid` with `row_errors` "
    "(row = line number, header = 1; column; reason).\n\n" + (csv_io.__doc__ or "").split("\n", 1)[1]
)


@router.post(
    "/imports",
    status_code=status.HTTP_201_CREATED,
    summary="Import draft quotes from CSV",
    description=IMPORT_DESCRIPTION,
    operation_id="import_quotes",
    responses=problems(400, 403, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
)
async def import_quotes(request: Request, caller: QuotesWrite, session: Session, idem: IdempotencyDep) -> ImportResult:
    raw = await _csv_bytes(request)
    return await idem.run(caller.account_id, ImportResult, lambda: csv_io.import_drafts(session, caller, raw))


async def _csv_bytes(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("text/csv", "application/csv", "text/plain"):
        return await request.body()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5)
        upload: Any = form.get("file")
        if upload is None or isinstance(upload, str):
            raise csv_io.file_error("Send the CSV as the multipart field `file`.", "csv_missing_file")
        data: bytes = await upload.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            raise csv_io.file_error(f"The file is larger than {MAX_IMPORT_BYTES} bytes; split it.", "csv_too_large")
        return data
    raise UnsupportedMediaType(
        f"Send the CSV as text/csv or multipart/form-data (field `file`), not {content_type or 'no content type'}."
    )


@router.get(
    "/export",
    summary="Export a store's effective price list",
    description="Every item priced for the store at `at` (default now) with the quote that supplies it, as CSV "
    "streamed from a server-side cursor. Columns: " + ", ".join(csv_io.EXPORT_COLUMNS) + ".",
    operation_id="export_store_prices",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **problems(403, 404)},
)
async def export_prices(
    request: Request,
    caller: QuotesRead,
    session: Session,
    store_id: uuid.UUID,
    format: Literal["csv"] = "csv",
    at: datetime | None = None,
) -> StreamingResponse:
    when = _aware(at) or utcnow()
    store = await stores_service.get(session, caller, store_id)
    body = csv_io.export_price_list(get_resources(request).sessionmaker, caller.account_id, store, when)
    filename = f"prices-{store.code}-{when.date().isoformat()}.csv"
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _day_start(day: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(day), time(0), tzinfo=UTC)
    except ValueError as exc:
        raise invalid_field(["query", "on"], f"{day!r} is not a calendar date") from exc


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid_field(["query", "at"], "must include a time zone offset, e.g. 2026-01-31T12:00:00Z")
    return value.astimezone(UTC)


# --- the collection and one quote ------------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Draft a quote",
    description="A cost price for one item and **either** one store (`store_id`) **or** a marketplace (`region` + "
    "`marketplace`) **or** a whole region (`region`). The currency must be the scope's: the store's, the "
    "marketplace's, or for a region-wide quote one of its marketplaces' currencies (it then prices only stores "
    "in that currency).",
    operation_id="create_quote",
    responses=problems(400, 403, 409),
)
async def create_quote(body: QuoteCreate, caller: QuotesWrite, session: Session, idem: IdempotencyDep) -> QuoteOut:
    return await idem.run(caller.account_id, QuoteOut, lambda: service.create(session, caller, body))


@router.get("", summary="List quotes", operation_id="list_quotes", responses=problems(403))
async def list_quotes(
    caller: QuotesRead,
    session: Session,
    page: Pagination,
    item_id: uuid.UUID | None = None,
    store_id: uuid.UUID | None = None,
    status_: Annotated[QuoteStatus | None, Query(alias="status")] = None,
    scope_type: ScopeType | None = None,
    region: Region | None = None,
    marketplace: Marketplace | None = None,
) -> Page[QuoteOut]:
    result = await service.list_page(
        session,
        caller,
        page,
        item_id=item_id,
        store_id=store_id,
        status=status_.value if status_ else None,
        scope_type=scope_type.value if scope_type else None,
        region=region.value if region else None,
        marketplace=marketplace.value if marketplace else None,
    )
    return Page.of(result, QuoteOut.model_validate)


@router.get("/{quote_id:uuid}", summary="Get a quote", operation_id="get_quote", responses=problems(403, 404))
async def get_quote(quote_id: uuid.UUID, caller: QuotesRead, session: Session, response: Response) -> QuoteOut:
    return _out(await service.get(session, caller, quote_id), response)


@router.patch(
    "/{quote_id:uuid}",
    summary="Change a draft quote",
    description="Only drafts change (409 `not-a-draft` otherwise); `version` is required (stale → 409).",
    operation_id="update_quote",
    responses=problems(400, 403, 404, 409),
)
async def update_quote(
    quote_id: uuid.UUID, body: QuoteUpdate, caller: QuotesWrite, session: Session, response: Response
) -> QuoteOut:
    return _out(await service.update(session, caller, quote_id, body), response)


@router.get(
    "/{quote_id:uuid}/events",
    summary="A quote's timeline",
    description="Every step of the quote, oldest first: created, updated, submitted, approved, rejected, "
    "withdrawn, trimmed/deferred/superseded by a newer quote, expired.",
    operation_id="list_quote_events",
    responses=problems(403, 404),
)
async def list_quote_events(quote_id: uuid.UUID, caller: QuotesRead, session: Session) -> QuoteEventList:
    found = await service.list_events(session, caller, quote_id)
    return QuoteEventList(data=[QuoteEventOut.model_validate(e) for e in found])


@router.post(
    "/{quote_id:uuid}/submit",
    summary="Submit a draft for approval",
    description="draft → pending_approval. The answer lists the channel conflicts the quote would create "
    "(`conflicts`, a warning) and whether a finance approver is needed. Refused (422 `price-change-over-cap`) when "
    "the change exceeds the policy's hard cap and the quote has no `override_reason`.",
    operation_id="submit_quote",
    responses=problems(400, 403, 404, 409),
)
async def submit_quote(
    quote_id: uuid.UUID, body: QuoteAction, caller: QuotesWrite, session: Session, response: Response
) -> QuoteWithConflicts:
    return _with_conflicts(await service.submit(session, caller, quote_id, version=body.version), response)


@router.post(
    "/{quote_id:uuid}/approve",
    summary="Approve a pending quote",
    description="pending_approval → approved. Four-eyes, by person: the approver must be another person than the "
    "submitter. People are told apart by the `issued_to` of their credentials, so neither the submitting "
    "credential nor any other credential issued to the same person (compared ignoring case and spacing) may "
    "approve (403 `four-eyes`); an admin who mints a second credential for themself cannot approve their own "
    "submission. "
    "A change above the policy threshold needs the finance or admin role (403 `finance-approval-required`). "
    "Conflicts must be acknowledged (409 `unacknowledged-conflicts`). Older approved quotes of the same item and "
    "scope are trimmed, deferred or superseded so that periods never overlap. Only before `effective_from`.",
    operation_id="approve_quote",
    responses=problems(400, 403, 404, 409),
)
async def approve_quote(
    quote_id: uuid.UUID, body: QuoteApprove, caller: QuotesApprove, session: Session, response: Response
) -> QuoteWithConflicts:
    outcome = await service.approve(
        session, caller, quote_id, version=body.version, acknowledge_conflicts=body.acknowledge_conflicts
    )
    return _with_conflicts(outcome, response)


@router.post(
    "/{quote_id:uuid}/reject",
    summary="Reject a pending quote",
    description="pending_approval → rejected; `reason` is required.",
    operation_id="reject_quote",
    responses=problems(400, 403, 404, 409),
)
async def reject_quote(
    quote_id: uuid.UUID, body: QuoteReject, caller: QuotesApprove, session: Session, response: Response
) -> QuoteOut:
    return _out(await service.reject(session, caller, quote_id, version=body.version, reason=body.reason), response)


@router.post(
    "/{quote_id:uuid}/withdraw",
    summary="Withdraw a draft or pending quote",
    description="draft | pending_approval → withdrawn.",
    operation_id="withdraw_quote",
    responses=problems(400, 403, 404, 409),
)
async def withdraw_quote(
    quote_id: uuid.UUID, body: QuoteAction, caller: QuotesWrite, session: Session, response: Response
) -> QuoteOut:
    return _out(await service.withdraw(session, caller, quote_id, version=body.version), response)


# --- policy ------------------------------------------------------------------------------------------------


@policy_router.get(
    "",
    summary="Get the quote approval policy",
    description="Defaults until set: finance above 10 %, hard cap 50 %, conflict tolerance 5 %.",
    operation_id="get_quote_policy",
    responses=problems(403),
)
async def get_quote_policy(caller: QuotesRead, session: Session) -> QuotePolicyOut:
    return _policy_out(await policy.current(session, caller))


@policy_router.put(
    "",
    summary="Set the quote approval policy",
    description="A change above `finance_threshold_pct` against the price it replaces needs an approver with the "
    "finance role (admin counts as finance); above `hard_cap_pct` it is refused unless the quote carries "
    "`override_reason`; `conflict_tolerance_pct` is the spread allowed between stores of one marketplace. "
    "Percentages are decimal strings or integers. Pass `version` to refuse lost updates.",
    operation_id="put_quote_policy",
    responses=problems(400, 403, 409),
)
async def put_quote_policy(body: QuotePolicyIn, caller: QuotePolicyWrite, session: Session) -> QuotePolicyOut:
    return _policy_out(await policy.put(session, caller, body))


# --- prices ------------------------------------------------------------------------------------------------


@prices_router.get(
    "/v1/prices/effective",
    summary="Get the effective price of an item for a store",
    description="The price in force at `at` (default now): the store's own approved quote, else its marketplace's, "
    "else its region's (in the store's currency), with `source` and `quote_id` naming which. 404 "
    "`no-effective-price` when none is in force.",
    operation_id="get_effective_price",
    responses=problems(403, 404),
)
async def get_effective_price(
    caller: QuotesRead,
    session: Session,
    store_id: uuid.UUID,
    item_id: uuid.UUID | None = None,
    asin: Annotated[str | None, Query(min_length=10, max_length=10)] = None,
    at: datetime | None = None,
) -> EffectivePrice:
    when = _aware(at) or utcnow()
    return await prices.effective(session, caller, item_id=item_id, asin=asin, store_id=store_id, at=when)


@prices_router.get(
    "/v1/items/{item_id}/price-history",
    summary="An item's approved prices over time",
    description="Every approved period (approved or since expired) per scope, oldest first within each scope; "
    "with `store_id`, only the scopes that can price that store (store, its marketplace, its region).",
    operation_id="get_item_price_history",
    tags=["prices"],
    responses=problems(403, 404),
)
async def get_price_history(
    item_id: uuid.UUID, caller: QuotesRead, session: Session, store_id: uuid.UUID | None = None
) -> PriceHistory:
    return await prices.history(session, caller, item_id, store_id=store_id)
