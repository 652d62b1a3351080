"""A few seconds of memory for credential lookups, so that authenticating is not a query per request.

An API key is remembered under its keyed hash (so only the holder of the secret can hit the entry), an
OAuth client under its public ``client_id``. Entries live ``settings.credential_cache_seconds`` (5 s by
default). Revoking or rolling a credential clears this process's cache at once; other processes notice
within that many seconds. Expiry and the roll grace period are checked against the clock on every hit.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.accounts.repository import ApiKeyRepository, OAuthClientRepository, api_keys, oauth_clients
from acorn_api.accounts.scopes import scopes_for
from acorn_api.accounts.secrets import hash_secret, split_prefix
from acorn_api.core.db import READ_ONLY_METHODS, Resources, after_commit
from acorn_api.core.time import utcnow
from acorn_api.settings import Settings

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_ENTRIES = 50_000

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class CredentialState:
    id: uuid.UUID
    account_id: uuid.UUID
    role: str | None
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    account_active: bool
    issued_to: str | None = None
    # Set when the secret presented is the previous one of a rolled API key: it works until then.
    grace_until: datetime | None = None

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this credential may not be used now, or None."""
        now = now or utcnow()
        if self.revoked_at is not None:
            return "has been revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "has expired"
        if self.grace_until is not None and self.grace_until <= now:
            return "was rolled and its old secret's grace period is over"
        if not self.account_active:
            return "belongs to a suspended account"
        return None


class TTLCache(Generic[K, V]):
    def __init__(self) -> None:
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, ttl: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > ttl:
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._entries.clear()


_api_keys: TTLCache[str, CredentialState] = TTLCache()
_clients: TTLCache[str, CredentialState] = TTLCache()
# Keyed hashes of secrets that matched no API key: a repeated bogus key costs no query for a few seconds.
_rejected: TTLCache[str, bool] = TTLCache()
# When this process last recorded each credential's use (monotonic), so it writes at most once a minute.
_touched: dict[uuid.UUID, float] = {}

LookupHook = Callable[[str], Awaitable[None]]
"""Called with the key prefix just before the database is asked, or after it rejected the secret (may raise)."""


def forget_credentials() -> None:
    """Drop every remembered credential of this process (after a revoke, roll or rotation)."""
    _api_keys.clear()
    _clients.clear()
    _rejected.clear()


async def _touch(
    repository: ApiKeyRepository | OAuthClientRepository,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    row_id: uuid.UUID,
    now: datetime,
) -> None:
    """Record use at most once a minute, with no row lock held for the request.

    With ``sessions`` (autocommit, for a request that writes), the update runs after the request's commit,
    on a connection of its own: the request never holds the key's row lock and never asks the pool for a
    second connection while it holds one. Without, it runs in ``session`` (a read-only request's autocommit
    session: the statement commits at once). Either way it skips a row another transaction has locked (a
    concurrent revoke) instead of waiting for it.
    """
    last = _touched.get(row_id)
    if last is not None and time.monotonic() - last < LAST_USED_RESOLUTION.total_seconds():
        return
    if len(_touched) >= MAX_ENTRIES:
        _touched.clear()
    _touched[row_id] = time.monotonic()
    stale_before = now - LAST_USED_RESOLUTION
    if sessions is None:
        await repository.touch_last_used(session, row_id, now, stale_before=stale_before)
        return

    async def touch() -> None:
        async with sessions() as own:
            await repository.touch_last_used(own, row_id, now, stale_before=stale_before)

    after_commit(session, touch)


def touch_sessions_for(request: Request) -> async_sessionmaker[AsyncSession] | None:
    """Where a request records ``last_used_at``: after commit on its own connection for a request that writes;
    in the request's own autocommit session (None) for a read-only one."""
    if request.method in READ_ONLY_METHODS:
        return None
    resources: Resources | None = request.app.state.resources
    return resources.autocommit_sessionmaker() if resources is not None else None


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION


async def _reject(digest: str, prefix: str, after_rejection: LookupHook | None) -> None:
    _rejected.put(digest, True)
    if after_rejection is not None:
        await after_rejection(prefix)


async def api_key_state(
    session: AsyncSession,
    settings: Settings,
    secret: str,
    *,
    before_lookup: LookupHook | None = None,
    after_rejection: LookupHook | None = None,
    touch_sessions: async_sessionmaker[AsyncSession] | None = None,
) -> CredentialState | None:
    """The state of the API key whose secret this is (current, or previous within its grace), or None.

    ``before_lookup`` runs (with the key prefix) only when the database must be asked, ``after_rejection``
    when the database matched nothing (a remembered rejection runs neither: it costs no query);
    ``touch_sessions`` (autocommit) records ``last_used_at`` outside the caller's transaction.
    """
    prefix = split_prefix(secret)
    if prefix is None:
        return None
    digest = hash_secret(secret, settings.api_key_pepper.get_secret_value())
    state = _api_keys.get(digest, settings.credential_cache_seconds)
    if state is not None:
        return state
    if _rejected.get(digest, settings.credential_negative_cache_seconds):
        return None
    if before_lookup is not None:
        await before_lookup(prefix)
    found = await api_keys.find_for_authentication(session, prefix)
    if found is None:
        await _reject(digest, prefix, after_rejection)
        return None
    key, account_status = found
    # Constant-time: the time a comparison takes must not tell how much of a guessed hash was right.
    if hmac.compare_digest(digest, key.secret_hash):
        grace_until = None
    elif key.previous_secret_hash is not None and hmac.compare_digest(digest, key.previous_secret_hash):
        grace_until = key.previous_valid_until or utcnow()
    else:
        await _reject(digest, prefix, after_rejection)
        return None
    state = CredentialState(
        id=key.id,
        account_id=key.account_id,
        role=key.role,
        scopes=scopes_for(key.role, key.scopes),
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        account_active=account_status == "active",
        grace_until=grace_until,
        issued_to=key.issued_to,
    )
    now = utcnow()
    if state.refusal(now) is None and _stale(key.last_used_at, now):
        await _touch(api_keys, session, touch_sessions, key.id, now)
    _api_keys.put(digest, state)
    return state


async def client_state(
    session: AsyncSession,
    settings: Settings,
    client_id: str,
    *,
    touch_sessions: async_sessionmaker[AsyncSession] | None = None,
) -> CredentialState | None:
    """The state of an OAuth client by its public id, or None (``touch_sessions`` as in :func:`api_key_state`)."""
    state = _clients.get(client_id, settings.credential_cache_seconds)
    if state is not None:
        return state
    found = await oauth_clients.find_for_authentication(session, client_id)
    if found is None:
        return None
    client, account_status = found
    state = CredentialState(
        id=client.id,
        account_id=client.account_id,
        role=client.role,
        scopes=scopes_for(client.role, client.scopes),
        expires_at=client.expires_at,
        revoked_at=client.revoked_at,
        account_active=account_status == "active",
        issued_to=client.issued_to,
    )
    now = utcnow()
    if state.refusal(now) is None and _stale(client.last_used_at, now):
        await _touch(oauth_clients, session, touch_sessions, client.id, now)
    _clients.put(client_id, state)
    return state
