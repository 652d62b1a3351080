"""Delivering events: claim due deliveries, POST them with no database session open, record each attempt.

Three short transactions per batch, never one held across HTTP:

1. **claim** — lock due pending deliveries (``FOR UPDATE SKIP LOCKED``, so workers share the queue), take a
   lease (``next_attempt_at`` moves to the lease's end, so nobody else sees them as due), and write one
   ``in_flight`` attempt row each. A lease that is still there when its delivery is claimed again means the
   worker died mid-attempt: that attempt is marked ``interrupted`` and the delivery is attempted again.
2. **send** — the POSTs, in parallel, through the SSRF-guarded client; 2xx within the timeout is a success,
   anything else (3xx included: redirects are not followed) a failure.
3. **finish** — each attempt gets its outcome; each delivery succeeds, is rescheduled with exponential
   backoff and jitter, or fails for good once its retry window (3 days) is over; an endpoint whose
   deliveries have failed without a single success for the whole window is disabled, with an event.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import crypto
from acorn_api.core.jobs import flush_pending_jobs
from acorn_api.core.time import rfc3339, utcnow
from acorn_api.settings import Settings
from acorn_api.webhooks import events as event_log
from acorn_api.webhooks import urlguard
from acorn_api.webhooks.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from acorn_api.webhooks.repository import Key, attempts, deliveries, endpoints, events
from acorn_api.webhooks.schemas import endpoint_out
from acorn_api.webhooks.service import signing_secrets
from acorn_api.webhooks.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

log = structlog.get_logger(__name__)

LEASE_MARGIN_SECONDS = 20.0  # beyond the HTTP timeout: a lease older than this belongs to a dead worker
MAX_ERROR_LENGTH = 500
USER_AGENT = "Acorn-Webhooks/1"


def event_payload(event: Event) -> bytes:
    """The JSON a webhook POSTs (and signs): the event as ``GET /v1/events/{id}`` returns it."""
    body = {"id": str(event.id), "type": event.type, "created_at": rfc3339(event.created_at), "data": event.data}
    try:
        return orjson.dumps(body)
    except TypeError:  # integers beyond 64 bits (valid JSON) are beyond orjson
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def retry_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with "equal jitter": half the doubled delay fixed, half random."""
    ceiling = min(settings.webhook_retry_base_seconds * 2 ** max(attempt - 1, 0), settings.webhook_retry_max_seconds)
    return timedelta(seconds=ceiling / 2 + (rng or random).uniform(0, ceiling / 2))


@dataclass
class Claimed:
    account_id: uuid.UUID
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempt_id: uuid.UUID
    number: int
    lease_token: uuid.UUID
    window_started_at: datetime
    url: str | None  # None: the endpoint's secret cannot be read (recorded as the attempt's error)
    secrets: list[str]
    payload: bytes


@dataclass
class Result:
    claimed: Claimed
    status_code: int | None
    duration_ms: int
    error: str | None
    finished_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def claim(
    session: AsyncSession,
    settings: Settings,
    *,
    limit: int,
    only: list[Key] | None = None,
    first: list[Key] | None = None,
    now: datetime | None = None,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries and write their ``in_flight`` attempts (caller commits).

    ``only`` restricts the claim to those deliveries; ``first`` takes those (when due and free) before
    filling the batch with the oldest due others.
    """
    now = now or utcnow()
    lease_end = now + timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
    rows: list[WebhookDelivery] = []
    if first:
        rows = await deliveries.lock_due_any_account(session, now, limit, first)
    if len(rows) < limit:
        taken = [(r.account_id, r.id) for r in rows]
        rows += await deliveries.lock_due_any_account(session, now, limit - len(rows), only, exclude=taken)
    if not rows:
        return []
    for row in rows:
        if row.lease_token is not None:
            await attempts.interrupt(session, (row.account_id, row.id), now)
    found_events = await events.by_keys_any_account(session, [(r.account_id, r.event_id) for r in rows])
    found_endpoints = await endpoints.by_keys_any_account(session, [(r.account_id, r.endpoint_id) for r in rows])
    secrets_of: dict[Key, list[str] | None] = {}
    for key, endpoint in found_endpoints.items():
        try:
            secrets_of[key] = signing_secrets(settings, endpoint, now)
        except crypto.SecretsUnreadable:
            secrets_of[key] = None
    claimed: list[Claimed] = []
    new_attempts: list[WebhookAttempt] = []
    for row in rows:
        event = found_events[(row.account_id, row.event_id)]
        endpoint = found_endpoints[(row.account_id, row.endpoint_id)]
        row.attempts += 1
        row.lease_token = uuid.uuid4()
        row.lease_until = lease_end
        row.next_attempt_at = lease_end
        attempt = WebhookAttempt(
            account_id=row.account_id,
            id=uuid.uuid4(),
            delivery_id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            number=row.attempts,
            outcome="in_flight",
        )
        new_attempts.append(attempt)
        keys = secrets_of.get((row.account_id, row.endpoint_id))
        claimed.append(
            Claimed(
                account_id=row.account_id,
                delivery_id=row.id,
                endpoint_id=row.endpoint_id,
                event_id=row.event_id,
                event_type=event.type,
                attempt_id=attempt.id,
                number=row.attempts,
                lease_token=row.lease_token,
                window_started_at=row.window_started_at,
                url=endpoint.url if keys else None,
                secrets=keys or [],
                payload=event_payload(event),
            )
        )
    session.add_all(new_attempts)
    await session.flush()
    return claimed


async def send(client: httpx.AsyncClient, item: Claimed, settings: Settings) -> Result:
    """POST one delivery; never raises (every failure is the attempt's recorded error)."""
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        if item.url is None:
            raise crypto.SecretsUnreadable("the endpoint's signing secret cannot be decrypted with the configured keys")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: str(item.event_id),
            EVENT_TYPE_HEADER: item.event_type,
            SIGNATURE_HEADER: sign(item.payload, item.secrets),
        }
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            response = await client.post(item.url, content=item.payload, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
    except TimeoutError:
        error = f"timed out after {settings.webhook_timeout_seconds:g} s"
    except httpx.TimeoutException:
        error = f"timed out after {settings.webhook_timeout_seconds:g} s"
    except urlguard.UnsafeUrl as exc:
        error = f"refused: {exc}"
    except crypto.SecretsUnreadable as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:  # a bug or an odd failure is still a failed attempt, never a lost event
        log.exception("webhook_send_failed", delivery_id=str(item.delivery_id))
        error = f"{type(exc).__name__}"
    return Result(
        claimed=item,
        status_code=status_code,
        duration_ms=int((time.monotonic() - started) * 1000),
        error=error[:MAX_ERROR_LENGTH] if error else None,
        finished_at=utcnow(),
    )


async def finish(session: AsyncSession, settings: Settings, results: list[Result]) -> list[uuid.UUID]:
    """Record the outcomes (caller commits); returns the endpoints disabled now."""
    window = timedelta(seconds=settings.webhook_retry_window_seconds)
    attempt_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    outcome_by_endpoint: dict[Key, list[Result]] = defaultdict(list)
    for r in results:
        c = r.claimed
        next_at: datetime | None = None
        if r.succeeded:
            status = "succeeded"
        elif r.finished_at - c.window_started_at >= window:
            status = "failed"
        else:
            status = "pending"
            next_at = r.finished_at + retry_delay(c.number, settings)
        attempt_rows.append(
            {
                "b_account": c.account_id,
                "b_id": c.attempt_id,
                "b_outcome": "succeeded" if r.succeeded else "failed",
                "b_code": r.status_code,
                "b_duration": r.duration_ms,
                "b_error": r.error,
                "b_finished": r.finished_at,
                "b_next": next_at,
            }
        )
        delivery_rows.append(
            {
                "b_account": c.account_id,
                "b_id": c.delivery_id,
                "b_token": c.lease_token,
                "b_status": status,
                "b_next": next_at,
                "b_code": r.status_code,
                "b_delivered": r.finished_at if r.succeeded else None,
            }
        )
        outcome_by_endpoint[(c.account_id, c.endpoint_id)].append(r)
    await attempts.complete_many(session, attempt_rows)
    await deliveries.finish_many(session, delivery_rows)

    healthy = [key for key, rs in outcome_by_endpoint.items() if any(r.succeeded for r in rs)]
    await endpoints.clear_failing(session, healthy)
    disabled: list[uuid.UUID] = []
    for key in sorted(k for k in outcome_by_endpoint if k not in set(healthy)):
        first_failure = min(r.finished_at for r in outcome_by_endpoint[key])
        latest = max(r.finished_at for r in outcome_by_endpoint[key])
        failing_since, endpoint_status = await endpoints.mark_failing(session, key, first_failure)
        if endpoint_status == "enabled" and failing_since is not None and latest - failing_since >= window:
            await _disable(session, key, failing_since, latest)
            disabled.append(key[1])
    return disabled


async def _disable(session: AsyncSession, key: Key, failing_since: datetime, now: datetime) -> None:
    endpoint: WebhookEndpoint = await endpoints.get_for_update(session, key[0], key[1])
    if endpoint.status != "enabled":
        return
    endpoint.status = "disabled"
    endpoint.disabled_reason = f"every delivery failed since {rfc3339(failing_since)}"
    await session.flush()
    await deliveries.pause_for_endpoint(session, key[0], key[1])
    await session.refresh(endpoint)
    event_log.record(session, key[0], event_log.EventType.webhook_endpoint_disabled, endpoint_out(endpoint, now))
    log.warning("webhook_endpoint_disabled", account_id=str(key[0]), endpoint_id=str(key[1]))


async def run_batch(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: httpx.AsyncClient,
    redis: ArqRedis | None,
    *,
    limit: int,
    only: list[Key] | None = None,
    first: list[Key] | None = None,
    now: datetime | None = None,
) -> int:
    """Claim, send and record one batch; returns how many deliveries were attempted."""
    async with sessionmaker() as session, session.begin():
        claimed = await claim(session, settings, limit=limit, only=only, first=first, now=now)
    if not claimed:
        return 0
    gate = asyncio.Semaphore(settings.webhook_delivery_concurrency)

    async def one(item: Claimed) -> Result:
        async with gate:
            return await send(client, item, settings)

    results = list(await asyncio.gather(*(one(c) for c in claimed)))
    async with sessionmaker() as session:
        async with session.begin():
            await finish(session, settings, results)
        await flush_pending_jobs(session, redis)
    return len(claimed)
