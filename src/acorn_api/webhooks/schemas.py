"""Request and response shapes of /v1/events and /v1/webhook-endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_serializer, field_validator
from pydantic.json_schema import SkipJsonSchema

from acorn_api.core.time import UTCDateTime
from acorn_api.webhooks.events import EventType

ALL_EVENTS = "*"


class EndpointStatus(StrEnum):
    enabled = "enabled"
    disabled = "disabled"


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class AttemptOutcome(StrEnum):
    in_flight = "in_flight"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _check_event_types(value: list[EventType | Literal["*"]]) -> list[str]:
    names = [v.value if isinstance(v, EventType) else v for v in value]
    if ALL_EVENTS in names and len(names) != 1:
        raise ValueError('"*" (every event) cannot be combined with event types')
    if len(set(names)) != len(names):
        raise ValueError("event types must not repeat")
    return names


WebhookUrl = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2048,
        examples=["https://erp.example.com/acorn/webhooks"],
        description="https URL the events are POSTed to; private, link-local, metadata and loopback "
        "addresses are refused (loopback and http only in development)",
    ),
    AfterValidator(_no_control_characters),
]
EventTypes = Annotated[
    list[EventType | Literal["*"]],
    Field(
        min_length=1,
        max_length=50,
        examples=[["*"], ["quote.approved", "sync_run.failed"]],
        description='event types to receive, or ["*"] for every type (also future ones)',
    ),
    AfterValidator(_check_event_types),
]
Description = Annotated[str, Field(max_length=500), AfterValidator(_no_control_characters)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    event_types: EventTypes | Literal["*"] = Field(default=ALL_EVENTS, validate_default=True)
    description: Description = ""
    status: EndpointStatus = EndpointStatus.enabled

    @field_validator("event_types", mode="after")
    @classmethod
    def _star_as_list(cls, value: list[str] | str) -> list[str]:
        return [ALL_EVENTS] if value == ALL_EVENTS else [str(v) for v in value]

    @field_serializer("event_types")
    def _names(self, value: list[str]) -> list[str]:
        return value  # already the names (see _star_as_list): not the declared enum/"*" union


class EndpointUpdate(BaseModel):
    """Only the fields present change."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | SkipJsonSchema[None] = None
    event_types: EventTypes | Literal["*"] | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    status: EndpointStatus | SkipJsonSchema[None] = None
    version: int | SkipJsonSchema[None] = Field(default=None, ge=1, description="the version you read; stale → 409")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep the current value")
        return value

    @field_validator("event_types", mode="after")
    @classmethod
    def _star_as_list(cls, value: list[str] | str | None) -> list[str] | None:
        if value is None:
            return None
        return [ALL_EVENTS] if value == ALL_EVENTS else [str(v) for v in value]

    @field_serializer("event_types")
    def _names(self, value: list[str] | None) -> list[str] | None:
        return value  # already the names (see _star_as_list): not the declared enum/"*" union


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    status: EndpointStatus
    disabled_reason: str | None = Field(description="why the endpoint was disabled automatically, if it was")
    failing_since: UTCDateTime | None = Field(description="start of the current run of failed deliveries")
    secret_rotation_ends_at: UTCDateTime | None = Field(
        description="until then, deliveries also carry a signature made with the previous secret"
    )
    version: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="the signing secret; shown only now, store it safely")


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] | SkipJsonSchema[None] = Field(
        default=None, description="how long the previous secret still signs (default 24 h; 0 ends it at once)"
    )


class EndpointDeleted(BaseModel):
    id: uuid.UUID
    deleted: bool


class EventOut(BaseModel):
    """An event as the API returns it, and as a webhook POSTs it (the same JSON)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str = Field(examples=["quote.approved"])
    created_at: UTCDateTime
    data: dict[str, Any] = Field(description="the resource as the API returns it, when the event happened")


class Redeliver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: uuid.UUID | SkipJsonSchema[None] = Field(
        default=None, description="only to this endpoint; by default to every enabled endpoint subscribed to the type"
    )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    next_attempt_at: UTCDateTime | None


class RedeliveryOut(BaseModel):
    event_id: uuid.UUID
    deliveries: list[DeliveryOut] = Field(description="the deliveries scheduled now, one per endpoint")


class AttemptOut(BaseModel):
    """One POST of an event to the endpoint."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    number: int = Field(description="1 for the first attempt of this delivery, then 2, 3 ...")
    outcome: AttemptOutcome
    status_code: int | None = Field(description="the HTTP status the endpoint answered, if it answered")
    duration_ms: int | None
    error: str | None = Field(description="why the attempt failed: timeout, refused address, non-2xx ...")
    next_attempt_at: UTCDateTime | None = Field(description="when the next retry is due, if one is scheduled")
    created_at: UTCDateTime
    finished_at: UTCDateTime | None


def endpoint_out(endpoint: Any, now: datetime) -> EndpointOut:
    rotation_end = endpoint.previous_secret_expires_at
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        description=endpoint.description,
        status=EndpointStatus(endpoint.status),
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        secret_rotation_ends_at=rotation_end if rotation_end is not None and rotation_end > now else None,
        version=endpoint.version,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )
