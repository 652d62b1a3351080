"""A quote's timeline: every step is a quote event and an audit event, in the step's own transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.audit import AuditEvent
from acorn_api.accounts.auth import Caller
from acorn_api.quotes.models import Quote, QuoteEvent

AUDITED_FIELDS = (
    "item_id",
    "scope_key",
    "currency",
    "cost_price",
    "list_price",
    "min_order_quantity",
    "effective_from",
    "effective_to",
    "reason",
    "override_reason",
    "status",
    "version",
)


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    """Decimals as strings, times as RFC 3339, UUIDs as strings: what JSONB keeps."""
    value: dict[str, Any] = orjson.loads(orjson.dumps(details, default=_default))
    return value


def _default(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)  # asyncpg's UUID subclass, and anything else with a faithful str()


def snapshot(quote: Quote) -> dict[str, Any]:
    return audit.snapshot(quote, AUDITED_FIELDS)


def record(
    session: AsyncSession,
    caller: Caller | None,
    quote: Quote,
    action: str,
    *,
    from_status: str | None,
    before: dict[str, Any] | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> QuoteEvent:
    """Append ``action`` to the quote's timeline and the audit log. ``caller`` None means the system (jobs)."""
    event = QuoteEvent(
        account_id=quote.account_id,
        quote_id=quote.id,
        action=action,
        from_status=from_status,
        to_status=quote.status,
        actor_id=caller.credential_id if caller else None,
        actor_role=caller.role if caller else None,
        reason=reason,
        version=quote.version,
        details=_jsonable(details or {}),
    )
    session.add(event)
    after = snapshot(quote)
    if caller is not None:
        audit.record(session, caller, f"quote.{action}", "quote", quote.id, before=before, after=after)
    else:
        session.add(
            AuditEvent(
                account_id=quote.account_id,
                actor_id=None,
                actor_type="system",
                action=f"quote.{action}",
                resource_type="quote",
                resource_id=str(quote.id),
                request_id=structlog.contextvars.get_contextvars().get("request_id"),
                changes=audit.diff(before, after),
            )
        )
    return event
