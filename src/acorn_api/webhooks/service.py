"""The rules for events and webhook endpoints. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.amazon import crypto
from acorn_api.core.errors import Conflict, invalid_field
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.time import utcnow
from acorn_api.core.versioning import require_version
from acorn_api.settings import Settings
from acorn_api.webhooks import urlguard
from acorn_api.webhooks.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from acorn_api.webhooks.repository import attempts, deliveries, endpoints, events
from acorn_api.webhooks.schemas import EndpointCreate, EndpointUpdate
from acorn_api.webhooks.signing import new_secret

AUDITED_FIELDS = ("url", "event_types", "description", "status")
PURGE_BATCH = 5000


async def _checked_url(settings: Settings, url: str) -> str:
    try:
        await urlguard.check_url_resolved(url, urlguard.policy_for(settings))
    except urlguard.UnsafeUrl as exc:
        raise invalid_field(["body", "url"], f"not an allowed webhook URL: {exc}", "url_not_allowed") from exc
    return url


# ---------------------------------------------------------------- endpoints


async def create_endpoint(
    session: AsyncSession, settings: Settings, caller: Caller, data: EndpointCreate
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint with a new signing secret; the secret is returned once and stored encrypted."""
    url = await _checked_url(settings, data.url)
    secret = new_secret()
    endpoint = endpoints.add(
        session,
        caller.account_id,
        WebhookEndpoint(
            url=url,
            event_types=list(data.event_types),
            description=data.description,
            status=data.status.value,
            secret_encrypted=crypto.encrypt(settings, secret),
        ),
    )
    await session.flush()
    await session.refresh(endpoint)
    audit.record(
        session,
        caller,
        "webhook_endpoint.created",
        "webhook_endpoint",
        endpoint.id,
        after=audit.snapshot(endpoint, AUDITED_FIELDS),
    )
    return endpoint, secret


async def get_endpoint(session: AsyncSession, caller: Caller, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    return await endpoints.get(session, caller.account_id, endpoint_id)


async def list_endpoints(session: AsyncSession, caller: Caller, params: PageParams) -> Slice[WebhookEndpoint]:
    return await endpoints.page(session, endpoints.select(caller.account_id), params)


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
    *,
    if_match: int | None,
) -> WebhookEndpoint:
    """Change the fields present; enabling an endpoint resumes its paused deliveries, disabling pauses them."""
    endpoint = await endpoints.get_for_update(session, caller.account_id, endpoint_id)
    require_version("webhook endpoint", endpoint.version, version=data.version, if_match=if_match)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "url" in changes:
        await _checked_url(settings, changes["url"])
    before = audit.snapshot(endpoint, AUDITED_FIELDS)
    was = endpoint.status
    for name, value in changes.items():
        setattr(endpoint, name, value.value if hasattr(value, "value") else value)
    if not changes:
        return endpoint
    if endpoint.status == "enabled" and was == "disabled":
        endpoint.failing_since = None
        endpoint.disabled_reason = None
    await session.flush()
    if endpoint.status == "enabled" and was == "disabled":
        await deliveries.resume_for_endpoint(session, caller.account_id, endpoint.id, utcnow())
    elif endpoint.status == "disabled" and was == "enabled":
        await deliveries.pause_for_endpoint(session, caller.account_id, endpoint.id)
    await session.refresh(endpoint)
    after = audit.snapshot(endpoint, AUDITED_FIELDS)
    audit.record(
        session, caller, "webhook_endpoint.updated", "webhook_endpoint", endpoint.id, before=before, after=after
    )
    return endpoint


async def delete_endpoint(session: AsyncSession, caller: Caller, endpoint_id: uuid.UUID) -> None:
    """Remove the endpoint, its pending deliveries and its attempt history."""
    endpoint = await endpoints.get_for_update(session, caller.account_id, endpoint_id)
    before = audit.snapshot(endpoint, AUDITED_FIELDS)
    await session.delete(endpoint)
    await session.flush()
    audit.record(session, caller, "webhook_endpoint.deleted", "webhook_endpoint", endpoint_id, before=before)


async def rotate_secret(
    session: AsyncSession, settings: Settings, caller: Caller, endpoint_id: uuid.UUID, overlap_seconds: int | None
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret; the current one keeps signing too (a second ``v1``) for ``overlap_seconds``."""
    endpoint = await endpoints.get_for_update(session, caller.account_id, endpoint_id)
    overlap = settings.webhook_secret_overlap_seconds if overlap_seconds is None else overlap_seconds
    secret = new_secret()
    if overlap > 0:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=overlap)
    else:
        endpoint.previous_secret_encrypted = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret_encrypted = crypto.encrypt(settings, secret)
    await session.flush()
    await session.refresh(endpoint)
    audit.record(
        session, caller, "webhook_endpoint.secret_rotated", "webhook_endpoint", endpoint.id, after={"overlap": overlap}
    )
    return endpoint, secret


def signing_secrets(settings: Settings, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, then the previous one during its overlap."""
    found = [crypto.decrypt(settings, endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted is not None and expires is not None and expires > now:
        found.append(crypto.decrypt(settings, endpoint.previous_secret_encrypted))
    return found


async def list_attempts(
    session: AsyncSession, caller: Caller, endpoint_id: uuid.UUID, params: PageParams, *, event_id: uuid.UUID | None
) -> Slice[WebhookAttempt]:
    await endpoints.get(session, caller.account_id, endpoint_id)
    return await attempts.page(session, attempts.for_endpoint(caller.account_id, endpoint_id, event_id), params)


# ---------------------------------------------------------------- events


async def list_events(
    session: AsyncSession,
    caller: Caller,
    params: PageParams,
    *,
    types: Sequence[str] | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> Slice[Event]:
    if created_after is not None and created_before is not None and created_after >= created_before:
        raise invalid_field(["query", "created_before"], "must be later than created_after")
    stmt = events.filtered(caller.account_id, types=types, created_after=created_after, created_before=created_before)
    return await events.page(session, stmt, params)


async def get_event(session: AsyncSession, caller: Caller, event_id: uuid.UUID) -> Event:
    return await events.get(session, caller.account_id, event_id)


async def fan_out(session: AsyncSession, account_id: uuid.UUID, event_id: uuid.UUID) -> list[uuid.UUID]:
    """One pending delivery per enabled endpoint subscribed to the event's type; idempotent (a second call,
    or a call after the event was purged, adds nothing). Returns the deliveries created now."""
    event = await events.find(session, account_id, event_id)
    if event is None:
        return []
    targets = await endpoints.subscribed(session, account_id, event.type)
    return await deliveries.create_missing(session, account_id, event.id, [e.id for e in targets], utcnow())


async def redeliver(
    session: AsyncSession, caller: Caller, event_id: uuid.UUID, endpoint_id: uuid.UUID | None
) -> list[WebhookDelivery]:
    """Deliver the event again, to one endpoint or to every enabled endpoint subscribed to its type."""
    event = await events.get(session, caller.account_id, event_id)
    if endpoint_id is not None:
        endpoint = await endpoints.get(session, caller.account_id, endpoint_id)
        if endpoint.status != "enabled":
            raise Conflict("The webhook endpoint is disabled; enable it first.", code="endpoint_disabled")
        targets = [endpoint]
    else:
        targets = await endpoints.subscribed(session, caller.account_id, event.type)
    scheduled = await deliveries.schedule_again(session, caller.account_id, event.id, [t.id for t in targets], utcnow())
    audit.record(
        session, caller, "event.redelivered", "event", event.id, after={"endpoints": [str(t.id) for t in targets]}
    )
    return scheduled


async def purge_expired_events(session: AsyncSession, settings: Settings, now: datetime | None = None) -> int:
    """Retention: delete one batch of events older than ``event_retention_days`` (at least 30)."""
    cutoff = (now or utcnow()) - timedelta(days=settings.event_retention_days)
    return await events.purge_before_any_account(session, cutoff, PURGE_BATCH)
