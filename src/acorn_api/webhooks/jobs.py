"""arq jobs: fan an event out to its endpoints and deliver at once; a cron retries what is due; retention."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import structlog
from arq import Retry
from sqlalchemy.exc import SQLAlchemyError

from acorn_api.core.jobs import job_session
from acorn_api.settings import Settings
from acorn_api.webhooks import delivery, service, urlguard

log = structlog.get_logger(__name__)

HTTP_KEY = "webhooks_http"
BATCH_SIZE = 200
SWEEP_SECONDS = 50.0  # a sweep stops taking new batches after this; the next cron run continues


def http_client(ctx: dict[str, Any]) -> httpx.AsyncClient:
    """The worker's one guarded client (connection pooling across deliveries)."""
    client: httpx.AsyncClient | None = ctx.get(HTTP_KEY)
    if client is None:
        settings: Settings = ctx["settings"]
        client = urlguard.guarded_client(
            urlguard.policy_for(settings),
            timeout=settings.webhook_timeout_seconds,
            max_connections=max(settings.webhook_delivery_concurrency, 10),
        )
        ctx[HTTP_KEY] = client
    return client


async def close_webhook_resources(ctx: dict[str, Any]) -> None:
    client: httpx.AsyncClient | None = ctx.pop(HTTP_KEY, None)
    if client is not None:
        await client.aclose()


async def deliver_event(ctx: dict[str, Any], account_id: str, event_id: str) -> int:
    """Create the event's deliveries (idempotent) and attempt them now, in one batch with other due
    deliveries (a burst of events shares claims and commits); failures wait for the retry cron."""
    account = uuid.UUID(account_id)
    try:
        async with job_session(ctx) as session:
            created = await service.fan_out(session, account, uuid.UUID(event_id))
    except (OSError, SQLAlchemyError) as exc:
        # the database is away: without deliveries rows nothing would retry this event, so arq must
        # (it retries only on Retry; DESIGN.md §8), with a growing delay, up to the worker's max_tries
        raise Retry(defer=5 * ctx.get("job_try", 1)) from exc
    if not created:
        return 0
    return await delivery.run_batch(
        ctx["sessionmaker"],
        ctx["settings"],
        http_client(ctx),
        ctx.get("redis"),
        limit=max(len(created), BATCH_SIZE),
        first=[(account, d) for d in created],
    )


async def deliver_due_webhooks(ctx: dict[str, Any]) -> int:
    """Cron, every few seconds: attempt every due delivery (retries, redeliveries, interrupted attempts)."""
    started = time.monotonic()
    total = 0
    while time.monotonic() - started < SWEEP_SECONDS:
        done = await delivery.run_batch(
            ctx["sessionmaker"], ctx["settings"], http_client(ctx), ctx.get("redis"), limit=BATCH_SIZE
        )
        total += done
        if done < BATCH_SIZE:
            break
    if total:
        log.info("webhook_deliveries_attempted", count=total)
    return total


async def purge_old_events(ctx: dict[str, Any]) -> int:
    """Cron, daily: delete events past the retention period (``ACORN_EVENT_RETENTION_DAYS``, at least 30)."""
    total = 0
    while True:
        async with job_session(ctx) as session:
            deleted = await service.purge_expired_events(session, ctx["settings"])
        total += deleted
        if deleted < service.PURGE_BATCH:
            break
    if total:
        log.info("events_purged", count=total)
    return total
