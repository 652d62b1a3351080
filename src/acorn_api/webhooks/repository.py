"""Every query on events, webhook endpoints, deliveries and attempts.

Tenant reads and writes start from :class:`AccountScopedRepository`. The delivery worker and the retention
sweep work across accounts by nature (a due queue, a time cut-off); their statements say so in their names
and always address rows by the full ``(account_id, id)`` key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.repository import AccountScopedRepository
from acorn_api.webhooks.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

Key = tuple[uuid.UUID, uuid.UUID]  # (account_id, id)

# AccountScopedRepository is typed for TenantMixin tables; these are AccountKeyedMixin tables (PK (account_id, id))
# with the same account_id/id/created_at columns, which is all it uses. (type-var ignores below, until the
# lead widens the bound in core/repository.py.)


class EventRepository(AccountScopedRepository[Event]):
    model = Event
    not_found_message = "No such event."

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        types: Sequence[str] | None,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> Select[Event]:
        stmt = self.select(account_id)
        if types:
            stmt = stmt.where(Event.type.in_(list(types)))
        if created_after is not None:
            stmt = stmt.where(Event.created_at >= created_after)
        if created_before is not None:
            stmt = stmt.where(Event.created_at < created_before)
        return stmt

    async def any_matching(
        self, session: AsyncSession, account_id: uuid.UUID, event_type: str, data_contains: dict[str, Any]
    ) -> bool:
        stmt = self.select(account_id).where(Event.type == event_type, Event.data.contains(data_contains))
        return await session.scalar(stmt.with_only_columns(Event.id).limit(1)) is not None

    async def by_keys_any_account(self, session: AsyncSession, keys: Sequence[Key]) -> dict[Key, Event]:
        """Worker-only: the events of claimed deliveries, by their full keys."""
        if not keys:
            return {}
        rows = await session.scalars(select(Event).where(tuple_(Event.account_id, Event.id).in_(list(set(keys)))))
        return {(e.account_id, e.id): e for e in rows}

    async def purge_before_any_account(self, session: AsyncSession, cutoff: datetime, batch: int) -> int:
        """Retention: delete up to ``batch`` events older than ``cutoff`` (deliveries and attempts cascade)."""
        doomed = select(Event.account_id, Event.id).where(Event.created_at < cutoff).limit(batch)
        result = await session.execute(delete(Event).where(tuple_(Event.account_id, Event.id).in_(doomed)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class EndpointRepository(AccountScopedRepository[WebhookEndpoint]):
    model = WebhookEndpoint
    not_found_message = "No such webhook endpoint."

    async def any_enabled(self, session: AsyncSession, account_id: uuid.UUID) -> bool:
        """Whether the account has an endpoint that receives deliveries at all."""
        found = await session.scalar(
            select(self.select(account_id).where(WebhookEndpoint.status == "enabled").exists())
        )
        return bool(found)

    async def subscribed(
        self, session: AsyncSession, account_id: uuid.UUID, event_type: str, *, endpoint_id: uuid.UUID | None = None
    ) -> list[WebhookEndpoint]:
        """Enabled endpoints that receive ``event_type`` (by name or through ``*``)."""
        stmt = self.select(account_id).where(
            WebhookEndpoint.status == "enabled",
            or_(WebhookEndpoint.event_types.contains(["*"]), WebhookEndpoint.event_types.contains([event_type])),
        )
        if endpoint_id is not None:
            stmt = stmt.where(WebhookEndpoint.id == endpoint_id)
        return list((await session.scalars(stmt)).all())

    async def by_keys_any_account(self, session: AsyncSession, keys: Sequence[Key]) -> dict[Key, WebhookEndpoint]:
        """Worker-only: the endpoints of claimed deliveries, by their full keys."""
        if not keys:
            return {}
        rows = await session.scalars(
            select(WebhookEndpoint).where(tuple_(WebhookEndpoint.account_id, WebhookEndpoint.id).in_(list(set(keys))))
        )
        return {(e.account_id, e.id): e for e in rows}

    async def clear_failing(self, session: AsyncSession, keys: Sequence[Key]) -> None:
        if keys:
            await session.execute(
                update(WebhookEndpoint)
                .where(
                    tuple_(WebhookEndpoint.account_id, WebhookEndpoint.id).in_(list(set(keys))),
                    WebhookEndpoint.failing_since.is_not(None),
                )
                .values(failing_since=None)
                .execution_options(synchronize_session=False)
            )

    async def mark_failing(
        self, session: AsyncSession, key: Key, since: datetime
    ) -> tuple[datetime | None, str | None]:
        """Start (or continue) the endpoint's run of failures; returns (failing_since, status)."""
        row = (
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.account_id == key[0], WebhookEndpoint.id == key[1])
                .values(failing_since=func.coalesce(WebhookEndpoint.failing_since, since))
                .returning(WebhookEndpoint.failing_since, WebhookEndpoint.status)
                .execution_options(synchronize_session=False)
            )
        ).first()
        return (row[0], row[1]) if row else (None, None)


class DeliveryRepository(AccountScopedRepository[WebhookDelivery]):
    model = WebhookDelivery
    not_found_message = "No such delivery."

    async def create_missing(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        event_id: uuid.UUID,
        endpoint_ids: Sequence[uuid.UUID],
        now: datetime,
    ) -> list[uuid.UUID]:
        """One pending delivery per endpoint that has none for this event yet; returns the new ids."""
        if not endpoint_ids:
            return []
        rows = [
            {
                "account_id": account_id,
                "id": uuid.uuid4(),
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "window_started_at": now,
            }
            for endpoint_id in endpoint_ids
        ]
        # one statement shape whatever the number of rows (compiled once, sent as a batch)
        stmt = (
            insert(WebhookDelivery)
            .on_conflict_do_nothing(index_elements=["account_id", "event_id", "endpoint_id"])
            .returning(WebhookDelivery.id)
        )
        return list((await session.scalars(stmt, rows)).all())

    async def schedule_again(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        event_id: uuid.UUID,
        endpoint_ids: Sequence[uuid.UUID],
        now: datetime,
    ) -> list[WebhookDelivery]:
        """Redelivery: each endpoint's delivery of the event is pending again with a fresh retry window
        (a delivery being attempted right now keeps its lease; it is retried after it if it fails)."""
        if not endpoint_ids:
            return []
        await self.create_missing(session, account_id, event_id, endpoint_ids, now)
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.account_id == account_id,
                WebhookDelivery.event_id == event_id,
                WebhookDelivery.endpoint_id.in_(list(endpoint_ids)),
            )
            .values(status="pending", window_started_at=now, next_attempt_at=now)
            .where(or_(WebhookDelivery.lease_token.is_(None), WebhookDelivery.status != "pending"))
            .execution_options(synchronize_session=False)
        )
        stmt = self.select(account_id).where(
            WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id.in_(list(endpoint_ids))
        )
        return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())

    async def lock_due_any_account(
        self,
        session: AsyncSession,
        now: datetime,
        limit: int,
        only: Sequence[Key] | None = None,
        exclude: Sequence[Key] = (),
    ) -> list[WebhookDelivery]:
        """Worker-only: due pending deliveries of enabled endpoints, locked; rows another worker holds are
        skipped (``FOR UPDATE SKIP LOCKED``)."""
        stmt = (
            select(WebhookDelivery)
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.account_id == WebhookDelivery.account_id)
                & (WebhookEndpoint.id == WebhookDelivery.endpoint_id),
            )
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.status == "enabled",
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        if only is not None:
            if not only:
                return []
            stmt = stmt.where(tuple_(WebhookDelivery.account_id, WebhookDelivery.id).in_(list(only)))
        if exclude:
            stmt = stmt.where(tuple_(WebhookDelivery.account_id, WebhookDelivery.id).not_in(list(exclude)))
        return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())

    async def finish_many(self, session: AsyncSession, results: Sequence[dict[str, Any]]) -> None:
        """Apply attempt outcomes to deliveries still leased by the same attempt (``b_token``)."""
        if not results:
            return
        table = cast(Table, WebhookDelivery.__table__)
        stmt = (
            update(table)
            .where(
                table.c.account_id == bindparam("b_account"),
                table.c.id == bindparam("b_id"),
                table.c.lease_token == bindparam("b_token"),
            )
            .values(
                status=bindparam("b_status"),
                next_attempt_at=bindparam("b_next"),
                last_status_code=bindparam("b_code"),
                delivered_at=bindparam("b_delivered"),
                lease_token=None,
                lease_until=None,
                updated_at=func.clock_timestamp(),
            )
        )
        connection = await session.connection()
        await connection.execute(stmt, list(results))

    async def pause_for_endpoint(self, session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        """A disabled endpoint's pending deliveries wait (no due time) until it is enabled again."""
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.account_id == account_id,
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.lease_token.is_(None),
            )
            .values(next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )

    async def resume_for_endpoint(
        self, session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID, now: datetime
    ) -> None:
        """Re-enabled: paused deliveries are due now, with a fresh retry window."""
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.account_id == account_id,
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at.is_(None),
            )
            .values(next_attempt_at=now, window_started_at=now)
            .execution_options(synchronize_session=False)
        )


class AttemptRepository(AccountScopedRepository[WebhookAttempt]):
    model = WebhookAttempt
    not_found_message = "No such delivery attempt."

    async def interrupt(self, session: AsyncSession, key: Key, now: datetime) -> None:
        """The attempts of a delivery whose worker died before recording an outcome."""
        await session.execute(
            update(WebhookAttempt)
            .where(
                WebhookAttempt.account_id == key[0],
                WebhookAttempt.delivery_id == key[1],
                WebhookAttempt.outcome == "in_flight",
            )
            .values(
                outcome="interrupted",
                error="the worker stopped before the attempt finished; the delivery is retried",
                finished_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    async def complete_many(self, session: AsyncSession, results: Sequence[dict[str, Any]]) -> None:
        if not results:
            return
        table = cast(Table, WebhookAttempt.__table__)
        stmt = (
            update(table)
            .where(table.c.account_id == bindparam("b_account"), table.c.id == bindparam("b_id"))
            .values(
                outcome=bindparam("b_outcome"),
                status_code=bindparam("b_code"),
                duration_ms=bindparam("b_duration"),
                error=bindparam("b_error"),
                finished_at=bindparam("b_finished"),
                next_attempt_at=bindparam("b_next"),
                updated_at=func.clock_timestamp(),
            )
        )
        connection = await session.connection()
        await connection.execute(stmt, list(results))

    def for_endpoint(
        self, account_id: uuid.UUID, endpoint_id: uuid.UUID, event_id: uuid.UUID | None
    ) -> Select[WebhookAttempt]:
        return self.select_matching(account_id, endpoint_id=endpoint_id, event_id=event_id)


events = EventRepository()
endpoints = EndpointRepository()
deliveries = DeliveryRepository()
attempts = AttemptRepository()
