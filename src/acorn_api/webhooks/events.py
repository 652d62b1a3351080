"""Record an event in the caller's transaction: it exists if and only if the change that caused it commits.

Every domain calls :func:`record` from its service, inside the same session that makes the change; a
rolled-back change leaves no event. Delivery to webhook endpoints is sent through the same after-commit,
at-least-once job mechanism as every other job (``core.jobs.enqueue_after_commit``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.jobs import enqueue_after_commit
from acorn_api.webhooks.models import Event

DELIVER_EVENT_JOB = "deliver_event"


class EventType(StrEnum):
    sync_run_succeeded = "sync_run.succeeded"
    sync_run_failed = "sync_run.failed"
    connection_credentials_expiring = "connection.credentials_expiring"
    import_succeeded = "import.succeeded"
    import_failed = "import.failed"
    refund_case_created = "refund_case.created"
    refund_case_needs_review = "refund_case.needs_review"
    refund_case_deadline_approaching = "refund_case.deadline_approaching"
    refund_case_status_changed = "refund_case.status_changed"
    quote_submitted = "quote.submitted"
    quote_approved = "quote.approved"
    quote_rejected = "quote.rejected"
    reconciliation_unexplained_short_payment = "reconciliation.unexplained_short_payment"
    webhook_endpoint_disabled = "webhook_endpoint.disabled"


def _jsonable(data: BaseModel | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    value: dict[str, Any] = orjson.loads(orjson.dumps(data, default=str))
    return value


def record(
    session: AsyncSession, account_id: uuid.UUID, event_type: EventType, data: BaseModel | dict[str, Any]
) -> Event:
    """Add an event to the session's transaction; ``data`` is the resource as the API returns it.

    Its delivery to the account's webhook endpoints is queued through the after-commit job mechanism: a
    rolled-back transaction leaves neither the event nor a delivery. ``deliver_event`` is idempotent.
    """
    event = Event(id=uuid.uuid4(), account_id=account_id, type=event_type.value, data=_jsonable(data))
    session.add(event)
    _queue_delivery(session, account_id, event.id)
    return event


def _queue_delivery(session: AsyncSession, account_id: uuid.UUID, event_id: uuid.UUID) -> None:
    enqueue_after_commit(
        session,
        DELIVER_EVENT_JOB,
        str(account_id),
        str(event_id),
        job_id=f"{DELIVER_EVENT_JOB}:{event_id}",
        account_id=account_id,
    )


async def announce(session: AsyncSession, account_id: uuid.UUID, event_ids: Sequence[uuid.UUID]) -> None:
    """Queue delivery for events a domain wrote set-based (``INSERT … SELECT`` into ``events``) instead of
    through :func:`record`: the same after-commit, at-least-once path. An account with no enabled endpoint
    gets no jobs (there is nobody to deliver to; an endpoint receives the events made after it exists)."""
    if not event_ids:
        return
    from acorn_api.webhooks.repository import endpoints

    if not await endpoints.any_enabled(session, account_id):
        return
    for event_id in event_ids:
        _queue_delivery(session, account_id, event_id)


async def exists(
    session: AsyncSession, account_id: uuid.UUID, event_type: EventType, data_contains: dict[str, Any]
) -> bool:
    """Whether the account already has an event of this type whose data contains ``data_contains`` (for
    emitters that must say something once, e.g. once per connection and rotation date)."""
    from acorn_api.webhooks.repository import events

    return await events.any_matching(session, account_id, event_type.value, data_contains)
