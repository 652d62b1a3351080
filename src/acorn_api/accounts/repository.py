"""Queries for accounts, credentials and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, Select, Update, any_, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.audit import AuditEvent
from acorn_api.accounts.models import Account, ApiKey, OAuthClient
from acorn_api.core.repository import AccountScopedRepository


class AccountRepository:
    async def get(self, session: AsyncSession, account_id: uuid.UUID) -> Account | None:
        return await session.get(Account, account_id)

    async def lock(self, session: AsyncSession, account_id: uuid.UUID) -> None:
        """Serialise credential changes of one account (e.g. two admins revoking each other)."""
        await session.execute(select(Account.id).where(Account.id == account_id).with_for_update())

    def add(self, session: AsyncSession, account: Account) -> Account:
        session.add(account)
        return account


def _active(model: type[ApiKey] | type[OAuthClient], now: datetime) -> list[ColumnElement[bool]]:
    return [
        model.revoked_at.is_(None),
        or_(model.expires_at.is_(None), model.expires_at > now),
    ]


def _touch(model: type[ApiKey] | type[OAuthClient], row_id: uuid.UUID, at: datetime, stale_before: datetime) -> Update:
    """``UPDATE … SET last_used_at`` on the row only if it is stale and nobody holds its lock (SKIP LOCKED)."""
    free = (
        select(model.id)
        .where(model.id == row_id, or_(model.last_used_at.is_(None), model.last_used_at < stale_before))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return update(model).where(model.id == free).values(last_used_at=at)


def _grants_admin(model: type[ApiKey] | type[OAuthClient]) -> ColumnElement[bool]:
    return or_(model.role == "admin", literal("admin") == any_(model.scopes))


class ApiKeyRepository(AccountScopedRepository[ApiKey]):
    model = ApiKey
    not_found_message = "No such API key."

    async def find_by_prefix_for_authentication(self, session: AsyncSession, prefix: str) -> ApiKey | None:
        """The one lookup that is not account-scoped: it is how the caller's account is found."""
        key: ApiKey | None = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        return key

    async def find_for_authentication(self, session: AsyncSession, prefix: str) -> tuple[ApiKey, str] | None:
        """The key with this prefix and its account's status (not account-scoped: it finds the account)."""
        row = (
            await session.execute(
                select(ApiKey, Account.status)
                .join(Account, Account.id == ApiKey.account_id)
                .where(ApiKey.prefix == prefix)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def touch_last_used(
        self, session: AsyncSession, key_id: uuid.UUID, at: datetime, *, stale_before: datetime
    ) -> None:
        """Record use unless already recorded since ``stale_before``; never waits for a row lock (a revoke or
        roll in progress keeps its lock and this update skips the row)."""
        await session.execute(_touch(ApiKey, key_id, at, stale_before))

    def listing(self, account_id: uuid.UUID, *, include_revoked: bool) -> Select[ApiKey]:
        stmt = self.select(account_id)
        return stmt if include_revoked else stmt.where(ApiKey.revoked_at.is_(None))

    async def count_active_admins(
        self, session: AsyncSession, account_id: uuid.UUID, now: datetime, *, except_id: uuid.UUID
    ) -> int:
        stmt = (
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.account_id == account_id, ApiKey.id != except_id, _grants_admin(ApiKey), *_active(ApiKey, now)
            )
        )
        return int(await session.scalar(stmt) or 0)

    async def issued_to(self, session: AsyncSession, account_id: uuid.UUID, row_id: uuid.UUID) -> str | None:
        """The person this credential was issued to (None when there is no such credential)."""
        person: str | None = await session.scalar(
            select(ApiKey.issued_to).where(ApiKey.account_id == account_id, ApiKey.id == row_id)
        )
        return person


class OAuthClientRepository(AccountScopedRepository[OAuthClient]):
    model = OAuthClient
    not_found_message = "No such OAuth client."

    async def find_for_authentication(self, session: AsyncSession, client_id: str) -> tuple[OAuthClient, str] | None:
        """The client with this public id and its account's status (not account-scoped: it finds the account)."""
        row = (
            await session.execute(
                select(OAuthClient, Account.status)
                .join(Account, Account.id == OAuthClient.account_id)
                .where(OAuthClient.client_id == client_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def touch_last_used(
        self, session: AsyncSession, row_id: uuid.UUID, at: datetime, *, stale_before: datetime
    ) -> None:
        """As :meth:`ApiKeyRepository.touch_last_used`."""
        await session.execute(_touch(OAuthClient, row_id, at, stale_before))

    def listing(self, account_id: uuid.UUID, *, include_revoked: bool) -> Select[OAuthClient]:
        stmt = self.select(account_id)
        return stmt if include_revoked else stmt.where(OAuthClient.revoked_at.is_(None))

    async def count_active_admins(
        self, session: AsyncSession, account_id: uuid.UUID, now: datetime, *, except_id: uuid.UUID
    ) -> int:
        stmt = (
            select(func.count())
            .select_from(OAuthClient)
            .where(
                OAuthClient.account_id == account_id,
                OAuthClient.id != except_id,
                _grants_admin(OAuthClient),
                *_active(OAuthClient, now),
            )
        )
        return int(await session.scalar(stmt) or 0)

    async def issued_to(self, session: AsyncSession, account_id: uuid.UUID, row_id: uuid.UUID) -> str | None:
        """The person this credential was issued to (None when there is no such credential)."""
        person: str | None = await session.scalar(
            select(OAuthClient.issued_to).where(OAuthClient.account_id == account_id, OAuthClient.id == row_id)
        )
        return person


class AuditEventRepository(AccountScopedRepository[AuditEvent]):
    model = AuditEvent
    not_found_message = "No such audit event."

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        action: str | None = None,
        actor_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Select[AuditEvent]:
        stmt = self.select_matching(
            account_id, resource_type=resource_type, resource_id=resource_id, action=action, actor_id=actor_id
        )
        if since is not None:
            stmt = stmt.where(AuditEvent.created_at >= since)
        if until is not None:
            stmt = stmt.where(AuditEvent.created_at < until)
        return stmt


accounts = AccountRepository()
api_keys = ApiKeyRepository()
oauth_clients = OAuthClientRepository()
audit_events = AuditEventRepository()
