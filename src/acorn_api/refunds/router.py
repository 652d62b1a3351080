"""HTTP for /v1/refund-cases, /v1/case-rules and /v1/case-settings: parse, call the service, shape the answer."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BeforeValidator

from acorn_api.core.db import Session
from acorn_api.core.errors import problems
from acorn_api.core.http import IfMatch
from acorn_api.core.idempotency import IdempotencyDep
from acorn_api.core.money import Amount
from acorn_api.core.pagination import MAX_LIMIT, Page, Pagination
from acorn_api.core.time import utcnow
from acorn_api.refunds import evidence, service
from acorn_api.refunds.auth import RefundsRead, RefundsWrite
from acorn_api.refunds.models import CaseStatus, CaseType
from acorn_api.refunds.policy import TRANSITIONS
from acorn_api.refunds.repository import CaseFilters
from acorn_api.refunds.schemas import (
    ApplyOut,
    BulkTransitionIn,
    BulkTransitionOut,
    CaseDetail,
    CaseEventOut,
    CaseOut,
    CaseSettingsIn,
    CaseSettingsOut,
    CaseSort,
    CaseUpdate,
    DisputePacket,
    PredictedShortageList,
    RuleCreate,
    RuleList,
    RuleOut,
    RuleUpdate,
    TransitionIn,
)

router = APIRouter(prefix="/v1/refund-cases", tags=["refund cases"])
rules_router = APIRouter(prefix="/v1/case-rules", tags=["refund cases"])
settings_router = APIRouter(prefix="/v1/case-settings", tags=["refund cases"])

WORKFLOW = "Workflow: " + "; ".join(
    f"{s.value} → {', '.join(sorted(t.value for t in TRANSITIONS[s])) or '—'}" for s in CaseStatus
)

Short = Annotated[str | None, Query(min_length=1, max_length=64)]


def _iso_date(value: object) -> object:
    """Dates in queries are ``YYYY-MM-DD``; pydantic would read ``0`` as 1970-01-01."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


QueryDate = Annotated[date | None, BeforeValidator(_iso_date)]


@router.get(
    "",
    summary="List refund cases",
    description="Filters combine with AND; `status` repeats (`?status=open&status=needs_review`, or `status[]`). "
    "`sort`: `created_at` (newest first, default), `priority` and `amount` (highest first), `dispute_deadline` "
    "(soonest first, cases without a deadline last). The cursor belongs to its sort.",
    operation_id="list_refund_cases",
    responses=problems(403),
)
async def list_refund_cases(
    caller: RefundsRead,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size, 1-200")] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
    sort: CaseSort = CaseSort.created_at,
    type_: Annotated[CaseType | None, Query(alias="type")] = None,
    subtype: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    status_: Annotated[list[CaseStatus] | None, Query(alias="status", max_length=10)] = None,
    status_list: Annotated[list[CaseStatus] | None, Query(alias="status[]", max_length=10)] = None,
    store_id: uuid.UUID | None = None,
    vendor_code: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    invoice_number: Short = None,
    po_number: Short = None,
    asin: Annotated[str | None, Query(min_length=1, max_length=20)] = None,
    payment_number: Short = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    min_amount: Amount | None = None,
    max_amount: Amount | None = None,
    deadline_before: Annotated[QueryDate, Query(description="deadline strictly before this date")] = None,
    deadline_after: Annotated[QueryDate, Query(description="deadline on or after this date")] = None,
    opened_after: Annotated[QueryDate, Query(description="opened on or after this date")] = None,
    opened_before: Annotated[QueryDate, Query(description="opened strictly before this date")] = None,
    deadline_missed: bool | None = None,
    needs_review: bool | None = None,
) -> Page[CaseOut]:
    filters = CaseFilters(
        type=type_.value if type_ else None,
        subtype=subtype,
        statuses=tuple(s.value for s in (status_ or []) + (status_list or [])),
        store_id=store_id,
        vendor_code=vendor_code,
        invoice_number=invoice_number,
        po_number=po_number,
        asin=asin,
        payment_number=payment_number,
        currency=currency,
        assignee=assignee,
        tag=tag,
        min_amount=min_amount,
        max_amount=max_amount,
        deadline_before=deadline_before,
        deadline_after=deadline_after,
        opened_after=opened_after,
        opened_before=opened_before,
        deadline_missed=deadline_missed,
        needs_review=needs_review,
    )
    page = await service.list_page(session, caller, filters, sort=sort.value, limit=limit, cursor=cursor)
    now = utcnow()
    return Page(data=[CaseOut.of(c, now) for c in page.rows], next_cursor=page.next_cursor, has_more=page.has_more)


@router.get(
    "/predicted-shortages",
    summary="Invoices likely to get a shortage claim",
    description="Invoice lines (invoice submissions, else ledger invoice lines with quantities) whose PO line shows "
    "fewer units received (getPurchaseOrdersStatus) than invoiced — before Amazon deducts. Lines of invoices that "
    "already have a shortage case are left out unless `include_with_case=true`.",
    operation_id="list_predicted_shortages",
    responses=problems(403),
)
async def list_predicted_shortages(
    caller: RefundsRead,
    session: Session,
    page: Pagination,
    include_with_case: bool = False,
) -> PredictedShortageList:
    return await evidence.predicted_shortages(
        session, caller, limit=page.limit, cursor=page.cursor, include_with_case=include_with_case
    )


@router.post(
    "/bulk-transitions",
    summary="Move up to 500 cases at once",
    description="Per-case results, not all-or-nothing: every item is checked and applied on its own (its `version` "
    "when given, the workflow, the required fields); `results` says for each case whether it moved, and if not, "
    "the problem it would have had as a single transition. The ones that moved commit together. " + WORKFLOW,
    operation_id="bulk_transition_refund_cases",
    responses=problems(403),
)
async def bulk_transition_refund_cases(
    body: BulkTransitionIn, caller: RefundsWrite, session: Session
) -> BulkTransitionOut:
    results = await service.bulk_transition(session, caller, body)
    ok = sum(1 for r in results if r.ok)
    return BulkTransitionOut(succeeded=ok, failed=len(results) - ok, results=results)


@router.get(
    "/{case_id:uuid}", summary="Get a refund case", operation_id="get_refund_case", responses=problems(403, 404)
)
async def get_refund_case(case_id: uuid.UUID, caller: RefundsRead, session: Session, response: Response) -> CaseDetail:
    case = await service.get(session, caller, case_id)
    ids = await service.ledger_entry_ids(session, caller, case)
    items, missing = await evidence.evidence_of(session, caller, case)
    eff = await service.effective_settings(session, caller.account_id)
    allowed = service.allowed_targets(case, eff.windows[case.type])
    response.headers["ETag"] = f'"{case.version}"'
    out = CaseOut.of(case, utcnow())
    return CaseDetail(
        **out.model_dump(),
        ledger_entry_ids=ids,
        evidence=items,
        missing_evidence=missing,
        allowed_transitions=[CaseStatus(s) for s in allowed],
    )


@router.patch(
    "/{case_id:uuid}",
    summary="Assign or tag a refund case",
    description="Send only the fields to change. Pass the `version` you read (or `If-Match`) to refuse lost "
    "updates with 409 (412 for If-Match).",
    operation_id="update_refund_case",
    responses=problems(403, 404, 409, 412),
)
async def update_refund_case(
    case_id: uuid.UUID, body: CaseUpdate, caller: RefundsWrite, session: Session, if_match: IfMatch, response: Response
) -> CaseOut:
    case = await service.update(session, caller, case_id, body, if_match=if_match)
    response.headers["ETag"] = f'"{case.version}"'
    return CaseOut.of(case, utcnow())


@router.post(
    "/{case_id:uuid}/transitions",
    summary="Move a refund case through the dispute workflow",
    description="`version` (or `If-Match`) is required: of two transitions from the same version exactly one wins, "
    "the other gets 409 (412 with If-Match). An illegal move is a 409 whose `allowed` lists the legal targets. "
    "`disputed`/`redisputed` need `dispute_reference`; `written_off` needs `note` (the reason); "
    "`partially_recovered` needs `amount`. `redisputed` is bounded by the type's `max_disputes`. " + WORKFLOW,
    operation_id="transition_refund_case",
    responses=problems(403, 404, 409, 412),
)
async def transition_refund_case(
    case_id: uuid.UUID,
    body: TransitionIn,
    caller: RefundsWrite,
    session: Session,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    case = await service.transition(session, caller, case_id, body, if_match=if_match)
    response.headers["ETag"] = f'"{case.version}"'
    return CaseOut.of(case, utcnow())


@router.get(
    "/{case_id:uuid}/events",
    summary="A refund case's timeline",
    description="Oldest first: its creation, every transition (who, when, note, amount, dispute reference), "
    "linked ledger entries, edits, re-classifications and deadline alerts.",
    operation_id="list_refund_case_events",
    responses=problems(403, 404),
)
async def list_refund_case_events(
    case_id: uuid.UUID, caller: RefundsRead, session: Session, page: Pagination
) -> Page[CaseEventOut]:
    case, rows = await service.timeline(session, caller, case_id, page)
    data = [CaseEventOut.model_validate(r) for r in rows.rows]
    if page.cursor is None:
        created = CaseEventOut(
            id=None,
            kind="created",
            from_status=None,
            to_status=await service.initial_status(session, caller, case),
            note=None,
            amount=case.amount,
            dispute_reference=None,
            ledger_entry_id=case.origin_entry_id,
            actor="system",
            data={"type": case.type, "subtype": case.subtype, "rule_id": str(case.rule_id) if case.rule_id else None},
            created_at=case.created_at,
        )
        data.insert(0, created)
    return Page(data=data, next_cursor=rows.next_cursor, has_more=rows.has_more)


@router.get(
    "/{case_id:uuid}/dispute-packet",
    summary="Everything needed to file the dispute",
    description="JSON: the claim, amounts, quantities invoiced/received/disputed, references, deadline, evidence "
    "and the evidence that is missing. With `?format=zip` (or `Accept: application/zip`): a ZIP of summary.json, "
    "lines.csv and the raw source documents from the archive.",
    operation_id="get_dispute_packet",
    response_model=DisputePacket,
    responses={**problems(403, 404), 200: {"content": {"application/zip": {}}, "description": "the packet"}},
)
async def get_dispute_packet(
    case_id: uuid.UUID,
    caller: RefundsRead,
    session: Session,
    format_: Annotated[Literal["json", "zip"] | None, Query(alias="format")] = None,
    accept: Annotated[str | None, Header(max_length=500)] = None,
) -> Response | DisputePacket:
    case = await service.get(session, caller, case_id)
    packet, docs = await evidence.dispute_packet(session, caller, case, utcnow())
    wants_zip = format_ == "zip" or (format_ is None and accept is not None and "application/zip" in accept)
    if not wants_zip:
        return packet
    name = f"dispute-{case.invoice_number or case.id}.zip".replace('"', "")
    return Response(
        evidence.packet_zip(packet, docs),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# ---------------------------------------------------------------- rules


@rules_router.get(
    "",
    summary="List case rules in evaluation order",
    description="All rules of the account (at most 200), lowest `position` first. For each attribute the first "
    "matching rule that sets it wins; attributes no rule sets come from the built-in defaults (type from the "
    "entry type, chargeback subtype from its description, review at or above the threshold).",
    operation_id="list_case_rules",
    responses=problems(403),
)
async def list_case_rules(caller: RefundsRead, session: Session) -> RuleList:
    rules = await service.list_rules(session, caller)
    return RuleList(data=[RuleOut.model_validate(r) for r in rules])


@rules_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a case rule",
    description="New cases follow it at once; existing open cases after `POST /v1/case-rules/apply`. Patterns are "
    "case-insensitive plain substrings (`contains`) or anchored wildcards (`glob`: `*`, `?`), never regexes.",
    operation_id="create_case_rule",
    responses=problems(403, 409),
)
async def create_case_rule(body: RuleCreate, caller: RefundsWrite, session: Session, idem: IdempotencyDep) -> RuleOut:
    return await idem.run(caller.account_id, RuleOut, lambda: service.create_rule(session, caller, body))


@rules_router.post(
    "/apply",
    summary="Re-classify the cases not yet disputed",
    description="Runs the current rules, threshold and windows over every case in open, needs_review or "
    "ready_to_dispute: type, subtype, deadline and rule follow; assignee and tags change where a rule sets them; "
    "open ↔ needs_review follows the review decision.",
    operation_id="apply_case_rules",
    responses=problems(403),
)
async def apply_case_rules(caller: RefundsWrite, session: Session) -> ApplyOut:
    applied = await service.apply_rules(session, caller)
    return ApplyOut(reclassified=applied.reclassified, status_changes=applied.status_changes)


@rules_router.get(
    "/{rule_id:uuid}", summary="Get a case rule", operation_id="get_case_rule", responses=problems(403, 404)
)
async def get_case_rule(rule_id: uuid.UUID, caller: RefundsRead, session: Session) -> RuleOut:
    return RuleOut.model_validate(await service.get_rule(session, caller, rule_id))


@rules_router.patch(
    "/{rule_id:uuid}",
    summary="Change a case rule",
    description="Send only the fields to change (null clears an optional one). `version` or `If-Match` guard "
    "against lost updates.",
    operation_id="update_case_rule",
    responses=problems(403, 404, 409, 412),
)
async def update_case_rule(
    rule_id: uuid.UUID, body: RuleUpdate, caller: RefundsWrite, session: Session, if_match: IfMatch
) -> RuleOut:
    return RuleOut.model_validate(await service.update_rule(session, caller, rule_id, body, if_match=if_match))


@rules_router.delete(
    "/{rule_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a case rule",
    operation_id="delete_case_rule",
    responses=problems(403, 404),
)
async def delete_case_rule(rule_id: uuid.UUID, caller: RefundsWrite, session: Session) -> Response:
    await service.delete_rule(session, caller, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- settings


def _settings_out(eff: service.Effective, version: int) -> CaseSettingsOut:
    return CaseSettingsOut(
        review_threshold=eff.review_threshold,
        windows={CaseType(t): service.window_out(w) for t, w in eff.windows.items()},
        version=version,
    )


@settings_router.get(
    "",
    summary="Review threshold and dispute windows",
    description="Defaults (DESIGN.md §1): shortage and price claim 30 days after the invoice due date; "
    "compliance chargeback 30 days after the notice, at most 2 disputes; co-op 24 months; review at 500.",
    operation_id="get_case_settings",
    responses=problems(403),
)
async def get_case_settings(caller: RefundsRead, session: Session) -> CaseSettingsOut:
    eff, version = await service.get_settings(session, caller)
    return _settings_out(eff, version)


@settings_router.put(
    "",
    summary="Set the review threshold and dispute windows",
    description="Types left out keep their defaults. New windows move the deadlines of cases not yet disputed. "
    "`version` (0 before the first change) or `If-Match` guard against lost updates.",
    operation_id="put_case_settings",
    responses=problems(403, 409, 412),
)
async def put_case_settings(
    body: CaseSettingsIn, caller: RefundsWrite, session: Session, if_match: IfMatch
) -> CaseSettingsOut:
    eff, version = await service.put_settings(session, caller, body, if_match=if_match)
    return _settings_out(eff, version)
