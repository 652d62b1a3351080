"""Events (the transactional outbox), webhook endpoints, deliveries and every delivery attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.accounts import models as _accounts_models  # noqa: F401 - foreign key target must be mapped
from acorn_api.core.models import AccountKeyedMixin, Base, check_in, tenant_fk

ENDPOINT_STATUSES = ("enabled", "disabled")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
ATTEMPT_OUTCOMES = ("in_flight", "succeeded", "failed", "interrupted")


class Event(AccountKeyedMixin, Base):
    """Something that happened, with ``data`` holding the resource as the API would return it."""

    __tablename__ = "events"

    type: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)

    __extra_table_args__ = (
        Index("ix_events_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_events_account_id_type_created_at", "account_id", "type", "created_at"),
        Index("ix_events_created_at", "created_at"),  # the retention sweep, across accounts
    )


class WebhookEndpoint(AccountKeyedMixin, Base):
    """A URL an account wants events POSTed to, with the secret the deliveries are signed with.

    The secret is stored encrypted (``amazon/crypto.py``'s MultiFernet): it signs, so it cannot be a hash.
    During a rotation the previous secret signs too, until ``previous_secret_expires_at``.
    ``failing_since`` is the start of the current run of failed attempts; a success clears it.
    """

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[\"*\"]'::jsonb"))
    description: Mapped[str] = mapped_column(String(500), server_default="")
    status: Mapped[str] = mapped_column(String(16), server_default="enabled")
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - read by SQLAlchemy at class creation
    __extra_table_args__ = (
        CheckConstraint(check_in("status", ENDPOINT_STATUSES), name="status"),
        Index("ix_webhook_endpoints_account_id_created_at", "account_id", "created_at", "id"),
    )


class WebhookDelivery(AccountKeyedMixin, Base):
    """One event owed to one endpoint: pending until a 2xx, or failed once the retry window is over.

    The row is the durable retry schedule: ``next_attempt_at`` says when, ``lease_until`` says a worker is
    on it right now (a worker that dies lets the lease run out and another takes the delivery over).
    """

    __tablename__ = "webhook_deliveries"

    event_id: Mapped[uuid.UUID]
    endpoint_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    window_started_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    lease_token: Mapped[uuid.UUID | None]
    last_status_code: Mapped[int | None]
    delivered_at: Mapped[datetime | None]

    __extra_table_args__ = (
        CheckConstraint(check_in("status", DELIVERY_STATUSES), name="status"),
        UniqueConstraint("account_id", "event_id", "endpoint_id"),
        tenant_fk(["event_id"], "events", ondelete="CASCADE"),
        tenant_fk(["endpoint_id"], "webhook_endpoints", ondelete="CASCADE"),
        Index("ix_webhook_deliveries_account_id_endpoint_id", "account_id", "endpoint_id"),
        # the due queue: only pending rows, oldest due first
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(AccountKeyedMixin, Base):
    """One POST of one delivery, recorded exactly once: written ``in_flight`` before the request goes out,
    completed with its outcome afterwards, or marked ``interrupted`` when its worker died."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID]
    endpoint_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    number: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16), server_default="in_flight")
    status_code: Mapped[int | None]
    duration_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]

    __extra_table_args__ = (
        CheckConstraint(check_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
        UniqueConstraint("account_id", "delivery_id", "number"),
        tenant_fk(["delivery_id"], "webhook_deliveries", ondelete="CASCADE"),
        Index("ix_webhook_attempts_account_id_endpoint_id_created_at", "account_id", "endpoint_id", "created_at", "id"),
    )
