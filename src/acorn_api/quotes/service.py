"""The rules for quotes: drafting, the approval state machine, four-eyes, the policy and takeover.

Takeover (what approving a quote does to older approved quotes of the same item and scope). Periods are
half-open ``[effective_from, effective_to)``. A quote can only be approved before its ``effective_from``
(approval never rewrites a price that was already in force), so the past is immutable. When quote N is
approved, each approved quote O of the same item and scope that overlaps N is changed *before* N becomes
approved, inside the same transaction and under a per-(item, scope) advisory lock:

* O started before N → O is **trimmed**: ``O.effective_to := N.effective_from``. O stays ``approved`` for
  the time it still governs, and expires when that ends. If O also ran past N's end, that tail is not
  restored: a quote is one continuous period (approve a new quote to return to the old price).
* O starts inside N and runs past N's end → O is **deferred**: ``O.effective_from := N.effective_to``.
* O lies entirely inside N → O is fully replaced: status ``superseded`` (it never took effect).

The exclusion constraint ``ex_quotes_approved_no_overlap`` then guarantees no overlap, even against a
concurrent approval that slipped past the lock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import service as accounts_service
from acorn_api.accounts.caller import Caller, same_person
from acorn_api.catalog.models import Item
from acorn_api.catalog.repository import items
from acorn_api.core.errors import Conflict, NotPermitted, Unprocessable, field_error, invalid_field
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.regions import MARKETPLACE_CURRENCY, MARKETPLACE_REGION, Marketplace, Region
from acorn_api.core.time import utcnow
from acorn_api.core.versioning import require_version
from acorn_api.quotes import conflicts, events, policy
from acorn_api.quotes.models import InvalidTransition, Quote, QuoteEvent, QuoteStatus, ScopeType, next_status
from acorn_api.quotes.repository import quote_events, quotes, store_scope_keys
from acorn_api.quotes.schemas import PriceConflict, QuoteCreate, QuoteOut, QuoteUpdate, check_period
from acorn_api.stores.models import Store
from acorn_api.stores.repository import stores
from acorn_api.webhooks.events import EventType
from acorn_api.webhooks.events import record as record_event

EXPIRY_BATCH = 500


@dataclass(frozen=True)
class Outcome:
    """A quote after a step, with what the step found out on the way."""

    quote: Quote
    conflicts: list[PriceConflict]
    requires_finance: bool


def region_currencies(region: Region) -> set[str]:
    return {MARKETPLACE_CURRENCY[m] for m, r in MARKETPLACE_REGION.items() if r == region}


def currency_problem(
    scope_type: ScopeType, currency: str, *, store: Store | None, region: Region | None, marketplace: Marketplace | None
) -> str | None:
    """Why ``currency`` cannot price this scope, or None.

    A store's quote is in the store's currency; a marketplace's in the marketplace's currency
    (``MARKETPLACE_CURRENCY``). A region-wide quote is in the currency of one of the region's marketplaces,
    and is the fallback only for stores in that same currency: there is no currency conversion anywhere.
    """
    if scope_type is ScopeType.store and store is not None and currency != store.currency:
        return f"store {store.code} prices in {store.currency}, not {currency}"
    if scope_type is ScopeType.marketplace and marketplace is not None:
        wanted = MARKETPLACE_CURRENCY[marketplace]
        if currency != wanted:
            return f"marketplace {marketplace.value} prices in {wanted}, not {currency}"
    if scope_type is ScopeType.region and region is not None and currency not in region_currencies(region):
        allowed = ", ".join(sorted(region_currencies(region)))
        return f"a region-wide {region.value} quote must be in a currency of its marketplaces ({allowed})"
    return None


def scope_type_of(store_id: uuid.UUID | None, marketplace: Marketplace | None) -> ScopeType:
    if store_id is not None:
        return ScopeType.store
    return ScopeType.marketplace if marketplace is not None else ScopeType.region


def _stale(quote: Quote, version: int) -> None:
    require_version("quote", quote.version, version=version)


def _transition(quote: Quote, action: str) -> QuoteStatus:
    try:
        return next_status(action, quote.status)
    except InvalidTransition as exc:
        raise Conflict(str(exc), code="invalid_transition", status_now=quote.status) from exc


def _not_started(quote: Quote, action: str) -> None:
    if quote.effective_from <= utcnow():
        raise Conflict(
            f"Cannot {action} a quote whose effective_from ({quote.effective_from.isoformat()}) has passed: "
            "approval never changes a price that was already in force. Draft a new quote with a later start.",
            code="effective_from_passed",
            errors=[field_error(["body", "effective_from"], "is in the past", "in_past")],
        )


async def _item_for_quote(session: AsyncSession, caller: Caller, item_id: uuid.UUID) -> Item:
    item = await items.find(session, caller.account_id, item_id)
    if item is None:
        raise invalid_field(["body", "item_id"], "no such item in this account", "not_found")
    if item.status != "active":
        raise invalid_field(["body", "item_id"], "the item is discontinued", "discontinued")
    return item


async def _store_for_quote(session: AsyncSession, caller: Caller, store_id: uuid.UUID) -> Store:
    store = await stores.find(session, caller.account_id, store_id)
    if store is None:
        raise invalid_field(["body", "store_id"], "no such store in this account", "not_found")
    if store.status != "active":
        raise invalid_field(["body", "store_id"], "the store is archived", "archived")
    return store


async def create(session: AsyncSession, caller: Caller, data: QuoteCreate) -> Quote:
    """Create a draft quote for an active item and scope, in the scope's currency."""
    await _item_for_quote(session, caller, data.item_id)
    store = await _store_for_quote(session, caller, data.store_id) if data.store_id else None
    scope_type = scope_type_of(data.store_id, data.marketplace)
    problem = currency_problem(scope_type, data.currency, store=store, region=data.region, marketplace=data.marketplace)
    if problem:
        raise invalid_field(["body", "currency"], problem, "currency_mismatch")
    quote = quotes.add(
        session,
        caller.account_id,
        Quote(
            item_id=data.item_id,
            scope_type=scope_type.value,
            store_id=data.store_id,
            region=data.region.value if data.region else None,
            marketplace=data.marketplace.value if data.marketplace else None,
            currency=data.currency,
            cost_price=data.cost_price,
            list_price=data.list_price,
            min_order_quantity=data.min_order_quantity,
            effective_from=data.effective_from,
            effective_to=data.effective_to,
            reason=data.reason,
            override_reason=data.override_reason,
            status=QuoteStatus.draft.value,
            created_by=caller.credential_id,
        ),
    )
    await session.flush()
    await session.refresh(quote)
    events.record(session, caller, quote, "created", from_status=None, reason=data.reason)
    return quote


async def get(session: AsyncSession, caller: Caller, quote_id: uuid.UUID) -> Quote:
    return await quotes.get(session, caller.account_id, quote_id)


async def list_page(
    session: AsyncSession,
    caller: Caller,
    params: PageParams,
    **filters: Any,
) -> Slice[Quote]:
    return await quotes.page(session, quotes.filtered(caller.account_id, **filters), params)


async def list_events(session: AsyncSession, caller: Caller, quote_id: uuid.UUID) -> list[QuoteEvent]:
    """The quote's timeline, oldest first (404 if the quote is not the caller's)."""
    await quotes.get(session, caller.account_id, quote_id)
    return await quote_events.for_quote(session, caller.account_id, quote_id)


async def update(session: AsyncSession, caller: Caller, quote_id: uuid.UUID, data: QuoteUpdate) -> Quote:
    """Change a draft; any other status answers 409, a stale version 409."""
    quote = await quotes.get_for_update(session, caller.account_id, quote_id)
    _stale(quote, data.version)
    if quote.status != QuoteStatus.draft.value:
        raise Conflict(
            f"Only a draft can be changed; this quote is {quote.status}.", code="not_a_draft", status_now=quote.status
        )
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    try:
        check_period(
            changes.get("effective_from", quote.effective_from), changes.get("effective_to", quote.effective_to)
        )
    except ValueError as exc:
        raise invalid_field(["body", "effective_to"], str(exc)) from exc
    if "currency" in changes:
        store = await stores.find(session, caller.account_id, quote.store_id) if quote.store_id else None
        problem = currency_problem(
            ScopeType(quote.scope_type),
            changes["currency"],
            store=store,
            region=Region(quote.region) if quote.region else None,
            marketplace=Marketplace(quote.marketplace) if quote.marketplace else None,
        )
        if problem:
            raise invalid_field(["body", "currency"], problem, "currency_mismatch")
    if not changes:
        return quote
    before = events.snapshot(quote)
    for name, value in changes.items():
        setattr(quote, name, value)
    await session.flush()
    await session.refresh(quote)
    events.record(session, caller, quote, "updated", from_status=quote.status, before=before)
    return quote


async def _baseline_keys(session: AsyncSession, quote: Quote) -> tuple[list[str], Store | None]:
    if quote.scope_type == ScopeType.store.value:
        assert quote.store_id is not None
        store = await stores.get(session, quote.account_id, quote.store_id)
        return store_scope_keys(store), store
    region_key = f"region:{quote.region}:{quote.currency}"
    if quote.scope_type == ScopeType.marketplace.value:
        return [f"marketplace:{quote.marketplace}", region_key], None
    return [region_key], None


async def _evaluate(
    session: AsyncSession, caller: Caller, quote: Quote
) -> tuple[policy.Policy, policy.Assessment, list[PriceConflict]]:
    """The policy's verdict on the change and the conflicts the quote would create."""
    rules = await policy.current(session, caller)
    keys, store = await _baseline_keys(session, quote)
    base = await quotes.resolve(session, quote.account_id, quote.item_id, keys, quote.currency, quote.effective_from)
    assessment = policy.assess(rules, quote.cost_price, base.cost_price if base else None)
    if assessment.over_cap and not quote.override_reason:
        raise Unprocessable(
            f"The cost price changes by {assessment.change_pct} % against {assessment.baseline} {quote.currency}; "
            f"the policy refuses changes above {rules.hard_cap_pct} % unless the quote has an override_reason.",
            code="price_change_over_cap",
            errors=[field_error(["body", "override_reason"], "required above the hard cap", "missing")],
            change_pct=format(assessment.change_pct, "f") if assessment.change_pct is not None else None,
            hard_cap_pct=format(rules.hard_cap_pct, "f"),
        )
    found = await conflicts.created_by(
        session, quote, rules.conflict_tolerance_pct, store_marketplace=store.marketplace if store else None
    )
    return rules, assessment, found


async def submit(session: AsyncSession, caller: Caller, quote_id: uuid.UUID, *, version: int) -> Outcome:
    """Send a draft for approval; the answer lists the conflicts it would create (a warning)."""
    quote = await quotes.get_for_update(session, caller.account_id, quote_id)
    _stale(quote, version)
    target = _transition(quote, "submit")
    _not_started(quote, "submit")
    _, assessment, found = await _evaluate(session, caller, quote)
    before, from_status = events.snapshot(quote), quote.status
    quote.status = target.value
    quote.submitted_by = caller.credential_id
    quote.submitted_at = utcnow()
    quote.baseline_price = assessment.baseline
    quote.change_pct = assessment.change_pct
    await session.flush()
    await session.refresh(quote)
    events.record(
        session,
        caller,
        quote,
        "submitted",
        from_status=from_status,
        before=before,
        details={
            "change_pct": assessment.change_pct,
            "requires_finance_approval": assessment.requires_finance,
            "conflicts": len(found),
        },
    )
    record_event(session, caller.account_id, EventType.quote_submitted, QuoteOut.model_validate(quote))
    return Outcome(quote, found, assessment.requires_finance)


async def _four_eyes(session: AsyncSession, caller: Caller, quote: Quote) -> None:
    """The approver must be another person than the submitter: people are compared by the ``issued_to`` of
    their credentials, so a second credential of the submitter (or one an admin mints for themself) is
    refused too."""
    if quote.submitted_by is None:
        return
    if quote.submitted_by == caller.credential_id:
        raise NotPermitted("The credential that submitted a quote cannot approve it (four-eyes).", code="four_eyes")
    submitter = await accounts_service.person_of(session, caller.account_id, quote.submitted_by)
    if same_person(submitter, caller.issued_to):
        raise NotPermitted(
            f"This quote was submitted by {submitter}, to whom this credential is issued too; another person must "
            "approve it (four-eyes).",
            code="four_eyes",
        )


async def approve(
    session: AsyncSession, caller: Caller, quote_id: uuid.UUID, *, version: int, acknowledge_conflicts: bool
) -> Outcome:
    """Approve a pending quote: four-eyes, the policy, acknowledged conflicts, then take over its period."""
    quote = await quotes.get_for_update(session, caller.account_id, quote_id)
    _stale(quote, version)
    target = _transition(quote, "approve")
    await _four_eyes(session, caller, quote)
    _not_started(quote, "approve")
    await quotes.lock_scope(session, quote.account_id, quote.item_id, quote.scope_key)
    rules, assessment, found = await _evaluate(session, caller, quote)
    if assessment.requires_finance and not policy.counts_as_finance(caller):
        raise NotPermitted(
            f"The cost price changes by {assessment.change_pct} %, above the policy's {rules.finance_threshold_pct} %: "
            "only a credential with the finance (or admin) role may approve it.",
            code="finance_approval_required",
            change_pct=format(assessment.change_pct, "f") if assessment.change_pct is not None else None,
        )
    if found and not acknowledge_conflicts:
        raise Conflict(
            f"Approving this quote creates {len(found)} channel price conflict(s); "
            "approve again with acknowledge_conflicts: true to accept them.",
            code="unacknowledged_conflicts",
            conflicts=[c.model_dump(mode="json") for c in found],
        )
    replaced = await _take_over(session, caller, quote)
    before, from_status = events.snapshot(quote), quote.status
    quote.status = target.value
    quote.decided_by = caller.credential_id
    quote.decided_at = utcnow()
    quote.baseline_price = assessment.baseline
    quote.change_pct = assessment.change_pct
    await _flush_approved(session)
    await session.refresh(quote)
    events.record(
        session,
        caller,
        quote,
        "approved",
        from_status=from_status,
        before=before,
        details={
            "change_pct": assessment.change_pct,
            "conflicts_acknowledged": len(found),
            "replaced": [str(q) for q in replaced],
        },
    )
    record_event(session, caller.account_id, EventType.quote_approved, QuoteOut.model_validate(quote))
    return Outcome(quote, found, assessment.requires_finance)


async def _take_over(session: AsyncSession, caller: Caller, new: Quote) -> list[uuid.UUID]:
    older = await quotes.overlapping_approved_for_update(
        session, new.account_id, new.item_id, new.scope_key, new.effective_from, new.effective_to
    )
    steps: list[tuple[Quote, str, dict[str, Any], str]] = []
    for old in older:
        before, from_status = events.snapshot(old), old.status
        if old.effective_from < new.effective_from:
            old.effective_to = new.effective_from
            action = "trimmed"
        elif new.effective_to is not None and (old.effective_to is None or old.effective_to > new.effective_to):
            old.effective_from = new.effective_to
            action = "deferred"
        else:
            old.status = next_status("supersede", old.status).value
            action = "superseded"
        old.superseded_by_id = new.id
        steps.append((old, action, before, from_status))
    if steps:
        await session.flush()
    for old, action, before, from_status in steps:
        await session.refresh(old)
        events.record(
            session, caller, old, action, from_status=from_status, before=before, details={"by_quote_id": new.id}
        )
    return [old.id for old, *_ in steps]


async def _flush_approved(session: AsyncSession) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "ex_quotes_approved_no_overlap" not in str(exc.orig):
            raise
        raise Conflict(
            "Another approved quote for this item and scope covers the same period; read the quotes and retry.",
            code="overlapping_quote",
        ) from exc


async def reject(session: AsyncSession, caller: Caller, quote_id: uuid.UUID, *, version: int, reason: str) -> Quote:
    """Reject a pending quote, with the reason recorded on the quote and its timeline."""
    quote = await quotes.get_for_update(session, caller.account_id, quote_id)
    _stale(quote, version)
    target = _transition(quote, "reject")
    before, from_status = events.snapshot(quote), quote.status
    quote.status = target.value
    quote.decided_by = caller.credential_id
    quote.decided_at = utcnow()
    quote.decision_reason = reason
    await session.flush()
    await session.refresh(quote)
    events.record(session, caller, quote, "rejected", from_status=from_status, before=before, reason=reason)
    record_event(session, caller.account_id, EventType.quote_rejected, QuoteOut.model_validate(quote))
    return quote


async def withdraw(session: AsyncSession, caller: Caller, quote_id: uuid.UUID, *, version: int) -> Quote:
    """Withdraw a draft or pending quote; it can no longer be approved."""
    quote = await quotes.get_for_update(session, caller.account_id, quote_id)
    _stale(quote, version)
    target = _transition(quote, "withdraw")
    before, from_status = events.snapshot(quote), quote.status
    quote.status = target.value
    await session.flush()
    await session.refresh(quote)
    events.record(session, caller, quote, "withdrawn", from_status=from_status, before=before)
    return quote


async def expire_due(session: AsyncSession) -> int:
    """Mark approved quotes whose period has ended as expired (a job; safe to run twice or concurrently)."""
    due = await quotes.expire_due(session, utcnow(), EXPIRY_BATCH)
    befores = [events.snapshot(quote) for quote in due]
    for quote in due:
        quote.status = next_status("expire", quote.status).value
    if due:
        await session.flush()
    for quote, before in zip(due, befores, strict=True):
        await session.refresh(quote)
        events.record(session, None, quote, "expired", from_status=QuoteStatus.approved.value, before=before)
    return len(due)
