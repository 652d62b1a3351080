"""Accounts and their first credential."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.models import Account, ApiKey
from acorn_api.accounts.repository import accounts, api_keys
from acorn_api.accounts.scopes import Role
from acorn_api.accounts.secrets import hash_secret, new_secret
from acorn_api.settings import Settings

API_KEY_KIND = "acn"


@dataclass(frozen=True)
class NewAccount:
    account: Account
    api_key: ApiKey
    secret: str


async def create_account(session: AsyncSession, settings: Settings, *, name: str) -> NewAccount:
    """Create a tenant with one admin API key; the key's secret is returned once and never stored."""
    account = accounts.add(session, Account(name=name))
    await session.flush()
    key, secret = await issue_api_key(session, settings, account.id, name="first admin key", role=Role.admin)
    return NewAccount(account=account, api_key=key, secret=secret)


async def issue_api_key(
    session: AsyncSession,
    settings: Settings,
    account_id: uuid.UUID,
    *,
    name: str,
    role: Role | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by_id: uuid.UUID | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key with a role or explicit scopes; the secret is returned once."""
    issued = new_secret(API_KEY_KIND)
    key = api_keys.add(
        session,
        account_id,
        ApiKey(
            name=name,
            prefix=issued.prefix,
            secret_hash=hash_secret(issued.secret, settings.api_key_pepper.get_secret_value()),
            role=role.value if role else None,
            scopes=sorted(scopes or []),
            expires_at=expires_at,
            created_by_id=created_by_id,
        ),
    )
    await session.flush()
    return key, issued.secret
