"""Accounts and their credentials: API keys, OAuth clients, access tokens. Flushes, never commits.

A credential never grants more than its creator holds (an ``admin`` credential holds everything, so an admin
may create any credential). The account's last active admin credential cannot be revoked (409): that would
lock the account out of credential management for good.
"""

from __future__ import annotations

import secrets as stdlib_secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.cache import forget_credentials
from acorn_api.accounts.caller import Caller
from acorn_api.accounts.models import Account, ApiKey, OAuthClient
from acorn_api.accounts.repository import accounts, api_keys, audit_events, oauth_clients
from acorn_api.accounts.schemas import CredentialCreate
from acorn_api.accounts.scopes import SCOPES, Role, grants, scopes_for
from acorn_api.accounts.secrets import hash_secret, new_secret, renew_secret, verify_secret
from acorn_api.accounts.tokens import issue_access_token
from acorn_api.core.errors import Conflict, NotPermitted, invalid_field
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.time import utcnow
from acorn_api.settings import Settings

# A credential holding this scope must name the person it is issued to (four-eyes compares people).
APPROVING_SCOPE = "quotes:approve"
API_KEY_KIND = "acn"
CLIENT_KIND = "acc"
API_KEY_AUDITED = ("name", "prefix", "role", "scopes", "issued_to", "expires_at", "revoked_at", "previous_valid_until")
CLIENT_AUDITED = ("name", "client_id", "role", "scopes", "issued_to", "expires_at", "revoked_at", "secret_rotated_at")


@dataclass(frozen=True)
class NewAccount:
    account: Account
    api_key: ApiKey
    secret: str


async def create_account(
    session: AsyncSession, settings: Settings, *, name: str, issued_to: str | None = None
) -> NewAccount:
    """Create a tenant with one admin API key; the key's secret is returned once and never stored."""
    account = accounts.add(session, Account(name=name))
    await session.flush()
    key, secret = await issue_api_key(
        session,
        settings,
        account.id,
        name="first admin key",
        role=Role.admin,
        issued_to=issued_to or f"first admin of {name}",
    )
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
    issued_to: str | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key with a role or explicit scopes; the secret is returned once.

    ``issued_to`` names the person who holds it (the HTTP API requires it for keys that can approve)."""
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
            issued_to=issued_to,
        ),
    )
    await session.flush()
    return key, issued.secret


# --- credential management ------------------------------------------------------------------------------


def _check_new_credential(caller: Caller, data: CredentialCreate) -> None:
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise invalid_field(["body", "expires_at"], "must be in the future")
    wanted = scopes_for(data.role.value if data.role else None, data.scopes)
    if data.issued_to is None and grants(wanted, APPROVING_SCOPE):
        raise invalid_field(
            ["body", "issued_to"],
            f"required for a credential that can approve quotes ({APPROVING_SCOPE}): name the person it is issued "
            "to, so that four-eyes can tell people apart",
            "missing",
        )
    beyond = sorted(s for s in wanted if not caller.can(s))
    if beyond:
        raise NotPermitted(
            f"A credential cannot grant more than its creator holds; you lack {', '.join(beyond)}.",
            code="scope_escalation",
        )


def _created_by(caller: Caller) -> uuid.UUID | None:
    # api_keys.created_by_id is a foreign key to api_keys; a client-made key is traced by the audit log.
    return caller.credential_id if caller.credential_type == "api_key" else None


async def _refuse_last_admin(
    session: AsyncSession, caller: Caller, role: str | None, scopes: list[str], row_id: uuid.UUID
) -> None:
    if not grants(scopes_for(role, scopes), "admin"):
        return
    now = utcnow()
    others = await api_keys.count_active_admins(session, caller.account_id, now, except_id=row_id)
    others += await oauth_clients.count_active_admins(session, caller.account_id, now, except_id=row_id)
    if others == 0:
        raise Conflict(
            "This is the account's last active admin credential; create another admin credential first.",
            code="last_admin_credential",
        )


def _api_key_snapshot(key: ApiKey) -> dict[str, object]:
    return audit.snapshot(key, API_KEY_AUDITED)


def _client_snapshot(client: OAuthClient) -> dict[str, object]:
    return audit.snapshot(client, CLIENT_AUDITED)


async def create_api_key(
    session: AsyncSession, settings: Settings, caller: Caller, data: CredentialCreate
) -> tuple[ApiKey, str]:
    """Create an API key no broader than the caller; its secret is returned once."""
    _check_new_credential(caller, data)
    key, secret = await issue_api_key(
        session,
        settings,
        caller.account_id,
        name=data.name,
        role=data.role,
        scopes=data.scopes,
        expires_at=data.expires_at,
        created_by_id=_created_by(caller),
        issued_to=data.issued_to,
    )
    await session.refresh(key)
    audit.record(session, caller, "api_key.created", "api_key", key.id, after=_api_key_snapshot(key))
    return key, secret


async def list_api_keys(
    session: AsyncSession, caller: Caller, params: PageParams, *, include_revoked: bool
) -> Slice[ApiKey]:
    return await api_keys.page(session, api_keys.listing(caller.account_id, include_revoked=include_revoked), params)


async def revoke_api_key(session: AsyncSession, caller: Caller, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key at once (this process) or within the credential cache time (others). Idempotent."""
    await accounts.lock(session, caller.account_id)
    key = await api_keys.get_for_update(session, caller.account_id, key_id)
    if key.revoked_at is not None:
        return key
    await _refuse_last_admin(session, caller, key.role, key.scopes, key.id)
    before = _api_key_snapshot(key)
    key.revoked_at = utcnow()
    await session.flush()
    audit.record(session, caller, "api_key.revoked", "api_key", key.id, before=before, after=_api_key_snapshot(key))
    forget_credentials()
    return key


async def roll_api_key(
    session: AsyncSession, settings: Settings, caller: Caller, key_id: uuid.UUID
) -> tuple[ApiKey, str]:
    """Give the key a new secret; the old one keeps working for the grace period (only the latest old one)."""
    key = await api_keys.get_for_update(session, caller.account_id, key_id)
    if key.revoked_at is not None:
        raise Conflict("A revoked API key cannot be rolled.", code="credential_revoked")
    before = _api_key_snapshot(key)
    issued = renew_secret(key.prefix)
    key.previous_secret_hash = key.secret_hash
    key.previous_valid_until = utcnow() + timedelta(hours=settings.api_key_roll_grace_hours)
    key.secret_hash = hash_secret(issued.secret, settings.api_key_pepper.get_secret_value())
    await session.flush()
    audit.record(session, caller, "api_key.rolled", "api_key", key.id, before=before, after=_api_key_snapshot(key))
    forget_credentials()
    return key, issued.secret


async def create_oauth_client(
    session: AsyncSession, settings: Settings, caller: Caller, data: CredentialCreate
) -> tuple[OAuthClient, str]:
    """Create an OAuth client no broader than the caller; its secret is returned once."""
    _check_new_credential(caller, data)
    issued = new_secret(CLIENT_KIND)
    client = oauth_clients.add(
        session,
        caller.account_id,
        OAuthClient(
            name=data.name,
            client_id=issued.prefix,
            secret_hash=hash_secret(issued.secret, settings.api_key_pepper.get_secret_value()),
            role=data.role.value if data.role else None,
            scopes=sorted(data.scopes or []),
            expires_at=data.expires_at,
            created_by_id=caller.credential_id,
            issued_to=data.issued_to,
        ),
    )
    await session.flush()
    await session.refresh(client)
    audit.record(session, caller, "oauth_client.created", "oauth_client", client.id, after=_client_snapshot(client))
    return client, issued.secret


async def list_oauth_clients(
    session: AsyncSession, caller: Caller, params: PageParams, *, include_revoked: bool
) -> Slice[OAuthClient]:
    stmt = oauth_clients.listing(caller.account_id, include_revoked=include_revoked)
    return await oauth_clients.page(session, stmt, params)


async def revoke_oauth_client(session: AsyncSession, caller: Caller, row_id: uuid.UUID) -> OAuthClient:
    """Revoke a client: no new tokens, and its live tokens stop working too. Idempotent."""
    await accounts.lock(session, caller.account_id)
    client = await oauth_clients.get_for_update(session, caller.account_id, row_id)
    if client.revoked_at is not None:
        return client
    await _refuse_last_admin(session, caller, client.role, client.scopes, client.id)
    before = _client_snapshot(client)
    client.revoked_at = utcnow()
    await session.flush()
    audit.record(
        session,
        caller,
        "oauth_client.revoked",
        "oauth_client",
        client.id,
        before=before,
        after=_client_snapshot(client),
    )
    forget_credentials()
    return client


async def rotate_client_secret(
    session: AsyncSession, settings: Settings, caller: Caller, row_id: uuid.UUID
) -> tuple[OAuthClient, str]:
    """Replace the client secret at once (no grace: a client fetches a token rarely and can retry with the
    new secret); tokens already issued stay valid until they expire."""
    client = await oauth_clients.get_for_update(session, caller.account_id, row_id)
    if client.revoked_at is not None:
        raise Conflict("A revoked OAuth client cannot get a new secret.", code="credential_revoked")
    before = _client_snapshot(client)
    issued = renew_secret(client.client_id)
    client.secret_hash = hash_secret(issued.secret, settings.api_key_pepper.get_secret_value())
    client.secret_rotated_at = utcnow()
    await session.flush()
    audit.record(
        session,
        caller,
        "oauth_client.secret_rotated",
        "oauth_client",
        client.id,
        before=before,
        after=_client_snapshot(client),
    )
    forget_credentials()
    return client, issued.secret


async def person_of(session: AsyncSession, account_id: uuid.UUID, credential_id: uuid.UUID) -> str | None:
    """The person a credential (API key or OAuth client) of the account was issued to, or None."""
    return await api_keys.issued_to(session, account_id, credential_id) or await oauth_clients.issued_to(
        session, account_id, credential_id
    )


# --- the token endpoint ----------------------------------------------------------------------------------


class TokenRequestError(Exception):
    """An RFC 6749 §5.2 error: ``error`` code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


async def issue_token(
    session: AsyncSession, settings: Settings, *, client_id: str, client_secret: str, scope: str | None
) -> IssuedToken:
    """Client credentials grant: authenticate the client, narrow the scopes, sign a token."""
    found = await oauth_clients.find_for_authentication(session, client_id)
    pepper = settings.api_key_pepper.get_secret_value()
    # Compare even when the client is unknown, so timing does not tell which client ids exist.
    expected = found[0].secret_hash if found else hash_secret(stdlib_secrets.token_hex(16), pepper)
    if not verify_secret(client_secret, expected, pepper) or found is None:
        raise TokenRequestError("invalid_client", "Client authentication failed.", 401)
    client, account_status = found
    now = utcnow()
    if client.revoked_at is not None:
        raise TokenRequestError("invalid_client", "The client has been revoked.", 401)
    if client.expires_at is not None and client.expires_at <= now:
        raise TokenRequestError("invalid_client", "The client has expired.", 401)
    if account_status != "active":
        raise TokenRequestError("invalid_grant", "The client's account is suspended.")
    held = scopes_for(client.role, client.scopes)
    if scope is None or not scope.strip():
        granted = sorted(held)
    else:
        requested = scope.split()
        unknown = [s for s in requested if s not in SCOPES]
        beyond = [s for s in requested if s in SCOPES and not grants(held, s)]
        if unknown or beyond:
            raise TokenRequestError(
                "invalid_scope",
                f"Scopes not available to this client: {' '.join(unknown + beyond)}.",
            )
        granted = sorted(set(requested))
    token, ttl = issue_access_token(settings, client_id=client.client_id, account_id=client.account_id, scopes=granted)
    if client.last_used_at is None or now - client.last_used_at > timedelta(minutes=1):
        # SKIP LOCKED: a concurrent revoke holding the row is not waited for (the token request ends right after).
        await oauth_clients.touch_last_used(session, client.id, now, stale_before=now - timedelta(minutes=1))
    return IssuedToken(access_token=token, expires_in=ttl, scope=" ".join(granted))


# --- the audit log ---------------------------------------------------------------------------------------


async def list_audit_events(
    session: AsyncSession,
    caller: Caller,
    params: PageParams,
    *,
    resource_type: str | None,
    resource_id: str | None,
    action: str | None,
    actor_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> Slice[audit.AuditEvent]:
    stmt = audit_events.filtered(
        caller.account_id,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        actor_id=actor_id,
        since=since,
        until=until,
    )
    return await audit_events.page(session, stmt, params)
