"""HTTP for /v1/events and /v1/webhook-endpoints: parse, call the service, shape the answer.

Creating an endpoint does not take ``Idempotency-Key``: a stored replay would have to keep the one-time
signing secret in clear. A retried create makes a second endpoint; list and delete the spare.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import problems
from acorn_api.core.http import IfMatch
from acorn_api.core.pagination import Page, Pagination
from acorn_api.core.time import UTCDateTime, utcnow
from acorn_api.webhooks import service
from acorn_api.webhooks.auth import WebhooksRead, WebhooksWrite
from acorn_api.webhooks.events import EventType
from acorn_api.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointDeleted,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventOut,
    Redeliver,
    RedeliveryOut,
    SecretRotation,
    endpoint_out,
)

events_router = APIRouter(prefix="/v1/events", tags=["events"])
router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

RECEIVER_NOTE = (
    "Deliveries are at least once and not ordered: receivers deduplicate by `Acorn-Event-Id` and verify "
    "`Acorn-Signature` (`acorn_api.webhooks.verify`)."
)


# ---------------------------------------------------------------- events


@events_router.get(
    "",
    summary="List events",
    description="Newest first. Events are kept at least 30 days.",
    operation_id="list_events",
    responses=problems(403),
)
async def list_events(
    caller: WebhooksRead,
    session: Session,
    page: Pagination,
    type_: Annotated[
        list[EventType] | None, Query(alias="type", max_length=20, description="one or more event types")
    ] = None,
    created_after: Annotated[UTCDateTime | None, Query(description="inclusive lower bound")] = None,
    created_before: Annotated[UTCDateTime | None, Query(description="exclusive upper bound")] = None,
) -> Page[EventOut]:
    result = await service.list_events(
        session,
        caller,
        page,
        types=[t.value for t in type_] if type_ else None,
        created_after=created_after,
        created_before=created_before,
    )
    return Page.of(result, EventOut.model_validate)


@events_router.get("/{event_id}", summary="Get an event", operation_id="get_event", responses=problems(403, 404))
async def get_event(event_id: uuid.UUID, caller: WebhooksRead, session: Session) -> EventOut:
    return EventOut.model_validate(await service.get_event(session, caller, event_id))


@events_router.post(
    "/{event_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Deliver an event again",
    description="Schedules the event again for one endpoint, or for every enabled endpoint subscribed to its type, "
    "with a fresh retry window. " + RECEIVER_NOTE,
    operation_id="redeliver_event",
    responses=problems(403, 404, 409),
)
async def redeliver_event(
    event_id: uuid.UUID, caller: WebhooksWrite, session: Session, body: Redeliver | None = None
) -> RedeliveryOut:
    scheduled = await service.redeliver(session, caller, event_id, body.endpoint_id if body else None)
    return RedeliveryOut(event_id=event_id, deliveries=[DeliveryOut.model_validate(d) for d in scheduled])


# ---------------------------------------------------------------- endpoints


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook endpoint",
    description="The answer holds the signing `secret`, shown only this once. The URL must be https and must not "
    "lead (after DNS resolution) to a private, link-local, metadata or loopback address. " + RECEIVER_NOTE,
    operation_id="create_webhook_endpoint",
    responses=problems(403),
)
async def create_webhook_endpoint(
    body: EndpointCreate, caller: WebhooksWrite, session: Session, settings: AppSettings
) -> EndpointWithSecret:
    endpoint, secret = await service.create_endpoint(session, settings, caller, body)
    return EndpointWithSecret(**endpoint_out(endpoint, utcnow()).model_dump(), secret=secret)


@router.get("", summary="List webhook endpoints", operation_id="list_webhook_endpoints", responses=problems(403))
async def list_webhook_endpoints(caller: WebhooksRead, session: Session, page: Pagination) -> Page[EndpointOut]:
    result = await service.list_endpoints(session, caller, page)
    now = utcnow()
    return Page.of(result, lambda e: endpoint_out(e, now))


@router.get(
    "/{endpoint_id}",
    summary="Get a webhook endpoint",
    operation_id="get_webhook_endpoint",
    responses=problems(403, 404),
)
async def get_webhook_endpoint(
    endpoint_id: uuid.UUID, caller: WebhooksRead, session: Session, response: Response
) -> EndpointOut:
    endpoint = await service.get_endpoint(session, caller, endpoint_id)
    response.headers["ETag"] = f'"{endpoint.version}"'
    return endpoint_out(endpoint, utcnow())


@router.patch(
    "/{endpoint_id}",
    summary="Change a webhook endpoint",
    description="Send only the fields to change. Enabling a disabled endpoint resumes its pending deliveries with a "
    "fresh retry window; disabling pauses them. Pass `version` (or `If-Match`) to refuse lost updates.",
    operation_id="update_webhook_endpoint",
    responses=problems(403, 404, 409, 412),
)
async def update_webhook_endpoint(
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    caller: WebhooksWrite,
    session: Session,
    settings: AppSettings,
    if_match: IfMatch,
    response: Response,
) -> EndpointOut:
    endpoint = await service.update_endpoint(session, settings, caller, endpoint_id, body, if_match=if_match)
    response.headers["ETag"] = f'"{endpoint.version}"'
    return endpoint_out(endpoint, utcnow())


@router.delete(
    "/{endpoint_id}",
    summary="Delete a webhook endpoint",
    description="Removes the endpoint with its pending deliveries and its attempt history.",
    operation_id="delete_webhook_endpoint",
    responses=problems(403, 404),
)
async def delete_webhook_endpoint(endpoint_id: uuid.UUID, caller: WebhooksWrite, session: Session) -> EndpointDeleted:
    await service.delete_endpoint(session, caller, endpoint_id)
    return EndpointDeleted(id=endpoint_id, deleted=True)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate the signing secret",
    description="Returns the new secret, shown only this once. Until `secret_rotation_ends_at` each delivery carries "
    "two `v1` signatures (new and previous secret), so receivers can switch without missing an event.",
    operation_id="rotate_webhook_endpoint_secret",
    responses=problems(403, 404),
)
async def rotate_webhook_endpoint_secret(
    endpoint_id: uuid.UUID,
    caller: WebhooksWrite,
    session: Session,
    settings: AppSettings,
    body: SecretRotation | None = None,
) -> EndpointWithSecret:
    endpoint, secret = await service.rotate_secret(
        session, settings, caller, endpoint_id, body.overlap_seconds if body else None
    )
    return EndpointWithSecret(**endpoint_out(endpoint, utcnow()).model_dump(), secret=secret)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="List delivery attempts",
    description="Every attempt to POST an event to this endpoint, newest first: status code, duration, error and "
    "when the next retry is due.",
    operation_id="list_webhook_deliveries",
    responses=problems(403, 404),
)
async def list_webhook_deliveries(
    endpoint_id: uuid.UUID,
    caller: WebhooksRead,
    session: Session,
    page: Pagination,
    event_id: uuid.UUID | None = None,
) -> Page[AttemptOut]:
    result = await service.list_attempts(session, caller, endpoint_id, page, event_id=event_id)
    return Page.of(result, AttemptOut.model_validate)
