"""Sync runs: queue one (manual or scheduled), read them. Flushes, never commits; the engine is ``sync.py``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.amazon.models import SyncRun, VendorConnection
from acorn_api.amazon.repository import connections, sync_runs
from acorn_api.amazon.schedule import next_run
from acorn_api.amazon.schemas import SyncKind, SyncRunCreate
from acorn_api.amazon.sync import INCREMENTAL_OVERLAP, INITIAL_LOOKBACK
from acorn_api.core.jobs import enqueue_after_commit
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.time import utcnow

RUN_SYNC_JOB = "run_sync"


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
