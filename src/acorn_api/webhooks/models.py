"""The events table: written in the same transaction as the change it describes (a transactional outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.accounts import models as _accounts_models  # noqa: F401 - foreign key target must be mapped
from acorn_api.core.models import AccountKeyedMixin, Base


class Event(AccountKeyedMixin, Base):
    """Something that happened, with ``data`` holding the resource as the API would return it."""

    __tablename__ = "events"

    type: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)

    __extra_table_args__ = (
        Index("ix_events_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_events_account_id_type_created_at", "account_id", "type", "created_at"),
    )
