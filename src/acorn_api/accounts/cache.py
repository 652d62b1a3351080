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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.repository import api_keys, oauth_clients
from acorn_api.accounts.scopes import scopes_for
from acorn_api.accounts.secrets import hash_secret, split_prefix
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


def forget_credentials() -> None:
    """Drop every remembered credential of this process (after a revoke, roll or rotation)."""
    _api_keys.clear()
    _clients.clear()


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION


async def api_key_state(session: AsyncSession, settings: Settings, secret: str) -> CredentialState | None:
    """The state of the API key whose secret this is (current, or previous within its grace), or None."""
    prefix = split_prefix(secret)
    if prefix is None:
        return None
    digest = hash_secret(secret, settings.api_key_pepper.get_secret_value())
    state = _api_keys.get(digest, settings.credential_cache_seconds)
    if state is not None:
        return state
    found = await api_keys.find_for_authentication(session, prefix)
    if found is None:
        return None
    key, account_status = found
    # Constant-time: the time a comparison takes must not tell how much of a guessed hash was right.
    if hmac.compare_digest(digest, key.secret_hash):
        grace_until = None
    elif key.previous_secret_hash is not None and hmac.compare_digest(digest, key.previous_secret_hash):
        grace_until = key.previous_valid_until or utcnow()
    else:
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
        await api_keys.touch_last_used(session, key.id, now)
    _api_keys.put(digest, state)
    return state


async def client_state(session: AsyncSession, settings: Settings, client_id: str) -> CredentialState | None:
    """The state of an OAuth client by its public id, or None."""
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
        await oauth_clients.touch_last_used(session, client.id, now)
    _clients.put(client_id, state)
    return state
