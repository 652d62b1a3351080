"""The rules of refund cases: creation and linking, the workflow, edits, rules and settings. Flushes, never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller
from acorn_api.core.errors import AcornError, Conflict, NotFound, invalid_field
from acorn_api.core.pagination import PageParams, Slice, decode_cursor, encode_cursor
from acorn_api.core.time import utcnow
from acorn_api.core.versioning import require_version
from acorn_api.refunds import repository as repo
from acorn_api.refunds.models import CaseEvent, CaseEventKind, CaseRule, CaseSettings, CaseStatus, RefundCase
from acorn_api.refunds.policy import DEFAULT_REVIEW_THRESHOLD, DEFAULT_WINDOWS, TRANSITIONS, Window
from acorn_api.refunds.schemas import (
    BulkItemResult,
    BulkTransitionIn,
    CaseOut,
    CaseSettingsIn,
    CaseUpdate,
    RuleCreate,
    RuleUpdate,
    TransitionIn,
    WindowIn,
)
from acorn_api.webhooks import events
from acorn_api.webhooks.events import EventType

log = structlog.get_logger(__name__)

MAX_RULES = 200
ALERT_DAYS = (7, 2)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Effective:
    review_threshold: Decimal
    windows: dict[str, Window]


def windows_of(stored: dict[str, Any]) -> dict[str, Window]:
    windows = dict(DEFAULT_WINDOWS)
    for type_, w in stored.items():
        windows[type_] = Window(
            basis=w["basis"], days=w.get("days"), months=w.get("months", 0), max_disputes=w["max_disputes"]
        )
    return windows


async def effective_settings(session: AsyncSession, account_id: uuid.UUID) -> Effective:
    row = await repo.settings_repo.current(session, account_id)
    if row is None:
        return Effective(DEFAULT_REVIEW_THRESHOLD, dict(DEFAULT_WINDOWS))
    return Effective(row.review_threshold, windows_of(row.windows))


async def get_settings(session: AsyncSession, caller: Caller) -> tuple[Effective, int]:
    row = await repo.settings_repo.current(session, caller.account_id)
    return await effective_settings(session, caller.account_id), (row.version if row else 0)


async def put_settings(
    session: AsyncSession, caller: Caller, data: CaseSettingsIn, *, if_match: int | None
) -> tuple[Effective, int]:
    """Replace the account's threshold and windows; new windows move the deadlines of cases not yet disputed."""
    row = await repo.settings_repo.current_for_update(session, caller.account_id)
    require_version("case settings", row.version if row else 0, version=data.version, if_match=if_match)
    stored = {t.value: w.model_dump(mode="json") for t, w in data.windows.items()}
    if row is None:
        row = repo.settings_repo.add(
            session, caller.account_id, CaseSettings(review_threshold=data.review_threshold, windows=stored)
        )
    else:
        row.review_threshold = data.review_threshold
        row.windows = stored
        row.version += 1
    await session.flush()
    windows = windows_of(stored)
    await repo.recompute_deadlines(session, caller.account_id, windows)
    await repo.rescore(session, now=utcnow(), account_id=caller.account_id)
    return Effective(data.review_threshold, windows), row.version


def window_out(w: Window) -> WindowIn:
    return WindowIn(basis=w.basis, days=w.days, months=w.months, max_disputes=w.max_disputes)


# ---------------------------------------------------------------- creation and linking


@dataclass(frozen=True)
class OpenResult:
    created: int
    needs_review: int
    linked_cases: int
    status_changes: int


async def open_cases(
    session: AsyncSession, account_id: uuid.UUID, *, import_id: uuid.UUID | None, now: datetime | None = None
) -> OpenResult:
    """Every deduction of the account (or of one import) gets exactly one case; later entries join their case.

    Idempotent: a second run (or one racing with this one) creates and links nothing more.
    """
    now = now or utcnow()
    await repo.account_lock(session, account_id)
    rules = await repo.rules_repo.ordered(session, account_id)
    eff = await effective_settings(session, account_id)
    created = await repo.create_cases(
        session,
        account_id,
        import_id=import_id,
        rules=rules,
        review_threshold=eff.review_threshold,
        windows=eff.windows,
        now=now,
    )
    # the created/needs-review events were written set-based with the cases: queue their delivery too
    await events.announce(session, account_id, created.event_ids)
    touched = await repo.link_entries(session, account_id, import_id=import_id)
    changes = await repo.apply_recoveries(session, account_id, touched)
    changed = [c for c in changes if c.old_status != c.new_status]
    for change in changed:
        repo.timeline.add(
            session,
            account_id,
            CaseEvent(
                case_id=change.case_id,
                kind=CaseEventKind.status_changed,
                from_status=change.old_status,
                to_status=change.new_status,
                amount=change.recovered_amount,
                note="moved by linked ledger entries",
            ),
        )
    if touched:
        await repo.rescore(session, now=now, account_id=account_id, case_ids=touched)
    await session.flush()
    if changed:
        by_id = await repo.cases.lock_many(session, account_id, [c.case_id for c in changed])
        for change in changed:
            case = by_id[change.case_id]
            await session.refresh(case)
            _status_event(session, case, change.old_status, now)
    log.info(
        "refund_cases_opened",
        account_id=str(account_id),
        created=created.created,
        needs_review=created.needs_review,
        linked_cases=len(touched),
    )
    return OpenResult(created.created, created.needs_review, len(touched), len(changed))


# ---------------------------------------------------------------- reading


def case_out(case: RefundCase, now: datetime) -> CaseOut:
    return CaseOut.of(case, now)


async def get(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> RefundCase:
    return await repo.cases.get(session, caller.account_id, case_id)


async def ledger_entry_ids(session: AsyncSession, caller: Caller, case: RefundCase) -> list[uuid.UUID]:
    return await repo.cases.ledger_entry_ids(session, caller.account_id, case)


async def list_page(
    session: AsyncSession, caller: Caller, filters: repo.CaseFilters, *, sort: str, limit: int, cursor: str | None
) -> repo.CasePage:
    return await repo.page(session, repo.filtered(caller.account_id, filters), sort=sort, limit=limit, cursor=cursor)


async def timeline(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, params: PageParams
) -> tuple[RefundCase, Slice[CaseEvent]]:
    """The case's history, oldest first: every transition, note, linked entry and edit, with who and when."""
    case = await repo.cases.get(session, caller.account_id, case_id)
    after = None
    if params.cursor:
        key = decode_cursor(params.cursor)
        after = (key.created_at, key.id)
    rows = await repo.timeline.of_case(session, caller.account_id, case_id, after=after, limit=params.limit + 1)
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if has_more and rows else None
    return case, Slice(rows, next_cursor, has_more)


async def initial_status(session: AsyncSession, caller: Caller, case: RefundCase) -> str:
    first = await repo.timeline.first(session, caller.account_id, case.id)
    return first.from_status if first is not None and first.from_status else case.status


# ---------------------------------------------------------------- edits


def _actor(caller: Caller) -> str:
    return f"{caller.credential_type}:{caller.credential_id}"


async def update(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, data: CaseUpdate, *, if_match: int | None
) -> RefundCase:
    """Change assignee and tags; the expected version comes from the body or ``If-Match``."""
    case = await repo.cases.get_for_update(session, caller.account_id, case_id)
    require_version("refund case", case.version, version=data.version, if_match=if_match)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    before = {k: getattr(case, k) for k in changes}
    for name, value in changes.items():
        setattr(case, name, value)
    if changes:
        case.version += 1
        repo.timeline.add(
            session,
            caller.account_id,
            CaseEvent(
                case_id=case.id,
                kind=CaseEventKind.updated,
                actor=_actor(caller),
                data={"before": before, "after": changes},
            ),
        )
        await session.flush()
        await session.refresh(case)
    return case


# ---------------------------------------------------------------- the workflow


def allowed_targets(case: RefundCase, window: Window) -> list[str]:
    allowed = set(TRANSITIONS[CaseStatus(case.status)])
    if case.dispute_count >= window.max_disputes:
        allowed.discard(CaseStatus.redisputed)
    if window.max_disputes < 1:
        allowed.discard(CaseStatus.disputed)
    return sorted(s.value for s in allowed)


def _illegal(case: RefundCase, to: str, allowed: list[str]) -> Conflict:
    listed = ", ".join(allowed) if allowed else "none (the case is closed)"
    return Conflict(
        f"A {case.status} case cannot move to {to}; allowed: {listed}.",
        code="illegal_transition",
        current_status=case.status,
        allowed=allowed,
    )


def check_transition(case: RefundCase, data: TransitionIn, window: Window) -> None:
    """Raise the problem (409 illegal, 422 missing field) that this transition would have; change nothing."""
    to = data.to.value
    allowed = allowed_targets(case, window)
    if to not in allowed:
        raise _illegal(case, to, allowed)
    remaining = case.amount - case.recovered_amount - case.written_off_amount
    takes_amount = {CaseStatus.recovered, CaseStatus.partially_recovered, CaseStatus.written_off}
    if data.amount is not None and data.to not in takes_amount:
        raise invalid_field(["body", "amount"], "only recovered, partially_recovered and written_off take an amount")
    if data.amount is not None and data.amount > remaining:
        raise invalid_field(["body", "amount"], f"more than the {remaining} still open on the case")
    if data.to in (CaseStatus.disputed, CaseStatus.redisputed) and not data.dispute_reference:
        raise invalid_field(["body", "dispute_reference"], "required: the Vendor Central dispute (case) id")
    if data.to == CaseStatus.written_off and not (data.note and data.note.strip()):
        raise invalid_field(["body", "note"], "required: the reason for the write-off")
    if data.to == CaseStatus.partially_recovered and (data.amount is None or not 0 < data.amount < remaining):
        raise invalid_field(["body", "amount"], f"required: more than 0 and less than the {remaining} still open")
    if data.to == CaseStatus.recovered and data.amount is not None and data.amount != remaining:
        raise invalid_field(["body", "amount"], f"recovered means all {remaining}; use partially_recovered for less")


def apply_transition(
    session: AsyncSession, caller: Caller, case: RefundCase, data: TransitionIn, window: Window, now: datetime
) -> None:
    check_transition(case, data, window)
    old = case.status
    remaining = case.amount - case.recovered_amount - case.written_off_amount
    amount: Decimal | None = None
    if data.to in (CaseStatus.disputed, CaseStatus.redisputed):
        case.dispute_count += 1
        case.dispute_reference = data.dispute_reference
    elif data.to in (CaseStatus.recovered, CaseStatus.partially_recovered):
        amount = data.amount if data.amount is not None else remaining
        case.recovered_amount += amount
    elif data.to == CaseStatus.written_off:
        amount = data.amount if data.amount is not None else remaining
        case.written_off_amount += amount
    case.status = data.to.value
    case.version += 1
    repo.timeline.add(
        session,
        caller.account_id,
        CaseEvent(
            case_id=case.id,
            kind=CaseEventKind.status_changed,
            from_status=old,
            to_status=case.status,
            note=data.note,
            amount=amount,
            dispute_reference=data.dispute_reference,
            actor=_actor(caller),
        ),
    )


def _status_event(session: AsyncSession, case: RefundCase, old_status: str, now: datetime) -> None:
    data = CaseOut.of(case, now).model_dump(mode="json")
    data["previous_status"] = old_status
    events.record(session, case.account_id, EventType.refund_case_status_changed, data)
    if case.status == CaseStatus.needs_review and old_status != CaseStatus.needs_review:
        events.record(session, case.account_id, EventType.refund_case_needs_review, data)


def _window(eff: Effective, case: RefundCase) -> Window:
    return eff.windows.get(case.type, DEFAULT_WINDOWS[case.type])


async def transition(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, data: TransitionIn, *, if_match: int | None
) -> RefundCase:
    """Move one case through the workflow. Exactly one of two concurrent transitions from one version wins."""
    case = await repo.cases.get_for_update(session, caller.account_id, case_id)
    if data.version is None and if_match is None:
        raise invalid_field(["body", "version"], "required: the version you read (or send If-Match)")
    require_version("refund case", case.version, version=data.version, if_match=if_match)
    eff = await effective_settings(session, caller.account_id)
    now = utcnow()
    old = case.status
    apply_transition(session, caller, case, data, _window(eff, case), now)
    await session.flush()
    await repo.rescore(session, now=now, account_id=caller.account_id, case_ids=[case.id])
    await session.refresh(case)
    _status_event(session, case, old, now)
    return case


async def bulk_transition(session: AsyncSession, caller: Caller, data: BulkTransitionIn) -> list[BulkItemResult]:
    """Per-case results: each item succeeds or fails on its own (stale version, illegal move, missing field)."""
    ids = [item.id for item in data.items]
    if len(set(ids)) != len(ids):
        raise invalid_field(["body", "items"], "a case may appear only once")
    locked = await repo.cases.lock_many(session, caller.account_id, ids)
    eff = await effective_settings(session, caller.account_id)
    now = utcnow()
    results: list[BulkItemResult] = []
    moved: list[tuple[RefundCase, str]] = []
    for item in data.items:
        case = locked.get(item.id)
        try:
            if case is None:
                raise NotFound("No such refund case.")
            require_version("refund case", case.version, version=item.version)
            old = case.status
            apply_transition(session, caller, case, item, _window(eff, case), now)
        except AcornError as exc:  # 404, stale version, illegal move, missing field: this item only
            results.append(BulkItemResult.failed(item.id, exc))
            continue
        moved.append((case, old))
        results.append(BulkItemResult(id=item.id, ok=True, status=case.status, version=case.version))
    if moved:
        await session.flush()
        await repo.rescore(session, now=now, account_id=caller.account_id, case_ids=[c.id for c, _ in moved])
        for case, old in moved:
            await session.refresh(case)
            _status_event(session, case, old, now)
    return results


# ---------------------------------------------------------------- rules


async def list_rules(session: AsyncSession, caller: Caller) -> list[CaseRule]:
    return await repo.rules_repo.ordered(session, caller.account_id)


async def get_rule(session: AsyncSession, caller: Caller, rule_id: uuid.UUID) -> CaseRule:
    return await repo.rules_repo.get(session, caller.account_id, rule_id)


async def _check_store(session: AsyncSession, caller: Caller, store_id: uuid.UUID | None) -> None:
    if store_id is None:
        return
    from acorn_api.stores.repository import stores

    if await stores.find(session, caller.account_id, store_id) is None:
        raise invalid_field(["body", "store_id"], "no such store in this account")


async def create_rule(session: AsyncSession, caller: Caller, data: RuleCreate) -> CaseRule:
    """Add a rule; without ``position`` it goes last. Existing cases change only on ``apply``."""
    existing = await repo.rules_repo.ordered(session, caller.account_id)
    if len(existing) >= MAX_RULES:
        raise Conflict(f"An account has at most {MAX_RULES} case rules.", code="too_many_rules")
    await _check_store(session, caller, data.store_id)
    values = data.model_dump(exclude={"position"})
    position = (
        data.position if data.position is not None else await repo.rules_repo.next_position(session, caller.account_id)
    )
    rule = repo.rules_repo.add(session, caller.account_id, CaseRule(position=position, **_rule_columns(values)))
    await session.flush()
    await session.refresh(rule)
    return rule


def _rule_columns(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "entry_types" in out and out["entry_types"] is not None:
        out["entry_types"] = [str(getattr(t, "value", t)) for t in out["entry_types"]]
    for key in ("set_type", "pattern_kind"):
        if out.get(key) is not None:
            out[key] = str(getattr(out[key], "value", out[key]))
    return out


async def update_rule(
    session: AsyncSession, caller: Caller, rule_id: uuid.UUID, data: RuleUpdate, *, if_match: int | None
) -> CaseRule:
    rule = await repo.rules_repo.get_for_update(session, caller.account_id, rule_id)
    require_version("case rule", rule.version, version=data.version, if_match=if_match)
    changes = _rule_columns(data.model_dump(exclude_unset=True, exclude={"version"}))
    if "store_id" in changes:
        await _check_store(session, caller, changes["store_id"])
    for name, value in changes.items():
        setattr(rule, name, value)
    lo, hi = rule.min_amount, rule.max_amount
    if lo is not None and hi is not None and lo > hi:
        raise invalid_field(["body", "max_amount"], "must not be below min_amount")
    if changes:
        rule.version += 1
        await session.flush()
        await session.refresh(rule)
    return rule


async def delete_rule(session: AsyncSession, caller: Caller, rule_id: uuid.UUID) -> None:
    rule = await repo.rules_repo.get_for_update(session, caller.account_id, rule_id)
    await session.delete(rule)
    await session.flush()


@dataclass(frozen=True)
class Applied:
    reclassified: int
    status_changes: int


async def apply_rules(session: AsyncSession, caller: Caller) -> Applied:
    """Re-run the current rules over every case not yet disputed, in one statement."""
    await repo.account_lock(session, caller.account_id)
    rules = await repo.rules_repo.ordered(session, caller.account_id)
    eff = await effective_settings(session, caller.account_id)
    changed = await repo.reclassify(
        session, caller.account_id, rules=rules, review_threshold=eff.review_threshold, windows=eff.windows
    )
    now = utcnow()
    ids = [c for c, _, _ in changed]
    moved = [(c, old, new) for c, old, new in changed if old != new]
    session.add_all(
        CaseEvent(
            account_id=caller.account_id,
            case_id=case_id,
            kind=CaseEventKind.reclassified,
            actor=_actor(caller),
            from_status=old,
            to_status=new,
        )
        for case_id, old, new in changed
    )
    if ids:
        await repo.rescore(session, now=now, account_id=caller.account_id, case_ids=ids)
    await session.flush()
    if moved:
        by_id = await repo.cases.lock_many(session, caller.account_id, [c for c, _, _ in moved])
        for case_id, old, _ in moved:
            case = by_id[case_id]
            await session.refresh(case)
            _status_event(session, case, old, now)
    return Applied(reclassified=len(changed), status_changes=len(moved))


# ---------------------------------------------------------------- the daily deadline run


@dataclass(frozen=True)
class DeadlineRun:
    rescored: int
    approaching: int
    missed: int


async def run_deadlines(session: AsyncSession, now: datetime | None = None) -> DeadlineRun:
    """Raise ``deadline_approaching`` at 7 and 2 days (each once), flag missed deadlines, re-score every open case."""
    now = now or utcnow()
    alerts = await repo.deadline_alerts(session, now=now, thresholds=ALERT_DAYS)
    rescored = await repo.rescore(session, now=now)
    approaching = 0
    missed = 0
    for alert in alerts:
        kind = CaseEventKind.deadline_missed if alert.missed else CaseEventKind.deadline_approaching
        session.add(
            CaseEvent(
                account_id=alert.account_id, case_id=alert.case_id, kind=kind, data={"days_left": alert.days_left}
            )
        )
        if alert.missed:
            missed += 1
            continue
        approaching += 1
    await session.flush()
    approaching_ids = [a for a in alerts if not a.missed]
    if approaching_ids:
        by_account: dict[uuid.UUID, list[uuid.UUID]] = {}
        for a in approaching_ids:
            by_account.setdefault(a.account_id, []).append(a.case_id)
        for account_id, ids in by_account.items():
            loaded = await repo.cases.lock_many(session, account_id, ids)
            for case in loaded.values():
                await session.refresh(case)
                data = CaseOut.of(case, now).model_dump(mode="json")
                events.record(session, account_id, EventType.refund_case_deadline_approaching, data)
    return DeadlineRun(rescored=rescored, approaching=approaching, missed=missed)
