"""The audit log: who changed what, when, through which request — written in the changing transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import Base, TenantMixin

if TYPE_CHECKING:
    from acorn_api.accounts.caller import Caller


class AuditEvent(TenantMixin, Base):
    __tablename__ = "audit_events"

    actor_id: Mapped[uuid.UUID | None]
    actor_type: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(50))
    resource_id: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(128))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    __extra_table_args__ = (
        Index("ix_audit_events_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_audit_events_account_id_resource", "account_id", "resource_type", "resource_id"),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{field: [before, after]}`` for the fields that differ (all fields on create or delete)."""
    before, after = before or {}, after or {}
    changed: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = _jsonable(before.get(name)), _jsonable(after.get(name))
        if old != new:
            changed[name] = [old, new]
    return changed


def snapshot(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name.rstrip("_"): getattr(row, name) for name in fields}


def record(
    session: AsyncSession,
    caller: Caller,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit row to the caller's transaction: it commits or rolls back with the change itself."""
    event = AuditEvent(
        account_id=caller.account_id,
        actor_id=caller.credential_id,
        actor_type=caller.credential_type,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id),
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        changes=diff(before, after),
    )
    session.add(event)
    return event
