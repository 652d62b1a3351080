"""Connections: create, change, delete, and the live test call. Flushes, never commits."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.amazon import crypto
from acorn_api.amazon.client import RetryPolicy
from acorn_api.amazon.connector import ConnectionTarget, http_client, make_client, token_cache
from acorn_api.amazon.endpoints import EndpointNotAllowed, policy
from acorn_api.amazon.errors import SpApiError
from acorn_api.amazon.models import ACTIVE_SYNC_STATUSES, VendorConnection
from acorn_api.amazon.repository import connections, sync_runs
from acorn_api.amazon.schedule import next_run
from acorn_api.amazon.schemas import (
    ConnectionCreate,
    ConnectionOut,
    ConnectionStatus,
    ConnectionUpdate,
    marketplaces_outside,
)
from acorn_api.core.errors import Conflict, Unprocessable, field_error, invalid_field
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.regions import Marketplace, Region
from acorn_api.core.time import utcnow
from acorn_api.core.versioning import require_version
from acorn_api.settings import Settings
from acorn_api.webhooks import events
from acorn_api.webhooks.events import EventType

ROTATION_WARNING_DAYS = 14
AUDITED_FIELDS = (
    "name",
    "region",
    "endpoint",
    "marketplaces",
    "vendor_codes",
    "credentials_rotate_by",
    "sync_schedule",
    "status",
)
#: The live test: two quick attempts, a short timeout, so a broken endpoint answers within seconds.
TEST_RETRY = RetryPolicy(max_attempts=2, timeout=10.0, base_delay=0.2)


def warnings_for(connection: VendorConnection, today: date | None = None) -> list[str]:
    """What the user should act on: credentials that expire within 14 days (or already did)."""
    today = today or utcnow().date()
    rotate_by = connection.credentials_rotate_by
    if rotate_by is None:
        return []
    days = (rotate_by - today).days
    if days < 0:
        return [f"credentials_expired: the LWA credentials were due for rotation on {rotate_by.isoformat()}"]
    if days <= ROTATION_WARNING_DAYS:
        return [f"credentials_rotate_soon: rotate the LWA credentials by {rotate_by.isoformat()} ({days} days left)"]
    return []


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A connection named {name!r} already exists in this account.",
        code="connection_name_taken",
        errors=[field_error(["body", "name"], "already used by another connection", "unique")],
    )


async def _flush_unique_name(session: AsyncSession, name: str) -> None:
    """Flush; a concurrent request that took the name after our check gets the same 409, not a 500."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_vendor_connections_account_id_name" not in str(exc.orig):
            raise
        raise _name_taken(name) from exc


def _checked_endpoint(settings: Settings, endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    try:
        return policy(settings).check_endpoint(endpoint)
    except EndpointNotAllowed as exc:
        raise invalid_field(["body", "endpoint"], str(exc), "endpoint_not_allowed") from exc


def _set_credentials(settings: Settings, connection: VendorConnection, client_id: str, secret: str, token: str) -> None:
    connection.lwa_client_id_encrypted = crypto.encrypt(settings, client_id)
    connection.lwa_client_secret_encrypted = crypto.encrypt(settings, secret)
    connection.lwa_refresh_token_encrypted = crypto.encrypt(settings, token)
    connection.credentials_updated_at = utcnow()


async def create_connection(
    session: AsyncSession, settings: Settings, caller: Caller, data: ConnectionCreate
) -> VendorConnection:
    """Create a connection to an allowed endpoint; its secrets are stored only encrypted and its first
    scheduled sync is one interval away."""
    endpoint = _checked_endpoint(settings, data.endpoint)
    if await connections.name_taken(session, caller.account_id, data.name):
        raise _name_taken(data.name)
    now = utcnow()
    connection = VendorConnection(
        name=data.name,
        region=data.region.value,
        endpoint=endpoint,
        marketplaces=[m.value for m in data.marketplaces],
        vendor_codes=list(data.vendor_codes),
        credentials_rotate_by=data.credentials_rotate_by,
        sync_schedule=data.sync_schedule,
        next_sync_at=next_run(data.sync_schedule, now),
        status=data.status.value,
    )
    _set_credentials(settings, connection, data.client_id, data.client_secret, data.refresh_token)
    connections.add(session, caller.account_id, connection)
    await _flush_unique_name(session, data.name)
    await session.refresh(connection)
    audit.record(
        session,
        caller,
        "connection.created",
        "connection",
        connection.id,
        after=audit.snapshot(connection, AUDITED_FIELDS),
    )
    return connection


async def get_connection(session: AsyncSession, caller: Caller, connection_id: uuid.UUID) -> VendorConnection:
    return await connections.get(session, caller.account_id, connection_id)


async def list_connections(
    session: AsyncSession, caller: Caller, page: PageParams, *, status: str | None
) -> Slice[VendorConnection]:
    return await connections.page(session, connections.filtered(caller.account_id, status=status), page)


def _moves_host(connection: VendorConnection, fields: dict[str, object], endpoint: str | None) -> bool:
    if "endpoint" in fields and endpoint != connection.endpoint:
        return True
    return "region" in fields and str(fields["region"]) != connection.region


def _check_region_of_marketplaces(connection: VendorConnection, data: ConnectionUpdate) -> None:
    """A new region keeps the stored marketplaces unless the request sends others, and new marketplaces keep
    the stored region: whichever the request changes must fit the other (the schema checks the pair when both
    are sent). Unchanged pairs are not re-checked, so a connection stored before this rule can still be edited."""
    if data.region is None and data.marketplaces is None:
        return
    region = data.region or Region(connection.region)
    marketplaces = (
        data.marketplaces if data.marketplaces is not None else [Marketplace(m) for m in connection.marketplaces]
    )
    problem = marketplaces_outside(region, marketplaces)
    if problem is not None:
        if data.marketplaces is None:
            problem += "; send the new region's marketplaces in the same request"
        raise invalid_field(
            ["body", "marketplaces" if data.marketplaces is not None else "region"], problem, "region_mismatch"
        )


async def update_connection(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    connection_id: uuid.UUID,
    data: ConnectionUpdate,
    *,
    if_match: int | None,
) -> VendorConnection:
    """Change a connection; a stale ``version`` (or If-Match) is refused so no update is lost, and a new
    endpoint or region needs new secrets in the same request (stored secrets never go to another host)."""
    fields = data.model_dump(exclude_unset=True, exclude={"version", "client_id", "client_secret", "refresh_token"})
    endpoint = _checked_endpoint(settings, fields.get("endpoint")) if "endpoint" in fields else None
    connection = await connections.get_for_update(session, caller.account_id, connection_id)
    require_version("connection", connection.version, version=data.version, if_match=if_match)
    if _moves_host(connection, fields, endpoint) and (data.client_secret is None or data.refresh_token is None):
        moved = [name for name in ("endpoint", "region") if name in fields]
        message = (
            f"changing {' and '.join(moved)} sends the connection's calls to another host: send new client_id, "
            "client_secret and refresh_token in the same request (stored secrets are only ever sent to the host "
            "they were stored for)"
        )
        raise Unprocessable(
            message,
            code="credentials_required",
            errors=[
                field_error(["body", name], message, "credentials_required")
                for name in ("client_secret", "refresh_token")
            ],
        )
    _check_region_of_marketplaces(connection, data)
    before = audit.snapshot(connection, AUDITED_FIELDS)
    if "name" in fields and await connections.name_taken(
        session, caller.account_id, fields["name"], except_id=connection.id
    ):
        raise _name_taken(fields["name"])
    for name, value in fields.items():
        if name == "marketplaces":
            value = [m.value if hasattr(m, "value") else m for m in data.marketplaces or []]
        elif name == "status":
            value = data.status.value if data.status else value
        elif name == "region":
            value = data.region.value if data.region else value
        elif name == "endpoint":
            value = endpoint
        setattr(connection, name, value)
    if "sync_schedule" in fields:
        connection.next_sync_at = next_run(connection.sync_schedule, utcnow())
    credentials_changed = data.client_id is not None
    if data.client_id is not None and data.client_secret is not None and data.refresh_token is not None:
        _set_credentials(settings, connection, data.client_id, data.client_secret, data.refresh_token)
    if credentials_changed and connection.status == "error":
        connection.status = "active"
    await _flush_unique_name(session, connection.name)
    await session.refresh(connection)
    after = audit.snapshot(connection, AUDITED_FIELDS)
    if credentials_changed:
        after["credentials_updated_at"] = connection.credentials_updated_at
    audit.record(session, caller, "connection.updated", "connection", connection.id, before=before, after=after)
    return connection


CONNECTION_DELETED = {"code": "connection_deleted", "message": "The connection was deleted."}


async def delete_connection(session: AsyncSession, caller: Caller, connection_id: uuid.UUID) -> None:
    """Remove a connection: its secrets are erased, its queued and running syncs stop (a running one at its
    next page), the data it produced stays as evidence."""
    connection = await connections.get_for_update(session, caller.account_id, connection_id)
    before = audit.snapshot(connection, AUDITED_FIELDS)
    now = utcnow()
    connection.deleted_at = now
    connection.lwa_client_id_encrypted = b""
    connection.lwa_client_secret_encrypted = b""
    connection.lwa_refresh_token_encrypted = b""
    connection.next_sync_at = None
    for run in await sync_runs.all_active(session, caller.account_id, connection.id):
        if run.status in ACTIVE_SYNC_STATUSES:
            # a running worker no longer owns the run: its next page write or heartbeat finds that and stops
            run.status, run.finished_at, run.worker_token = "failed", now, None
            run.error = dict(CONNECTION_DELETED)
    await session.flush()
    audit.record(session, caller, "connection.deleted", "connection", connection.id, before=before)


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    latency_ms: int
    request_id: str | None
    error_code: str | None
    error_message: str | None


async def _release(session: AsyncSession) -> None:
    """End the request's transaction so its pooled database connection is free during a slow outbound call.

    Only reads happened in it (the connection row, and authentication's advisory last-used stamp); what the
    route writes afterwards goes into a new short transaction that the request commits as usual.
    """
    if session.in_transaction():
        await session.rollback()


async def check_connection(
    session: AsyncSession, settings: Settings, redis: Redis, caller: Caller, connection_id: uuid.UUID
) -> CheckOutcome:
    """Exchange the refresh token for an access token and make one cheap call (one PO over the last day).

    No database connection is held while Amazon is called: the connection is read, the transaction ended,
    Amazon called, then the outcome is audited in a new short transaction.
    """
    target = ConnectionTarget.of(await connections.get(session, caller.account_id, connection_id))
    await _release(session)
    outcome = await _call_amazon(settings, redis, target)
    audit.record(
        session,
        caller,
        "connection.tested",
        "connection",
        target.id,
        after={"ok": outcome.ok, "error_code": outcome.error_code, "request_id": outcome.request_id},
    )
    return outcome


async def _call_amazon(settings: Settings, redis: Redis, target: ConnectionTarget) -> CheckOutcome:
    started = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    async with http_client(settings) as http:
        try:
            client = make_client(settings, redis, http, token_cache(settings), target, retry=TEST_RETRY)
            now = utcnow()
            pages = client.iter_purchase_orders(created_after=now - timedelta(days=1), created_before=now, limit=1)
            page = await anext(aiter(pages))
            await pages.aclose()  # type: ignore[attr-defined]
        except SpApiError as exc:
            return CheckOutcome(False, elapsed(), exc.request_id, exc.code or exc.kind, exc.message)
        except EndpointNotAllowed as exc:
            return CheckOutcome(False, 0, None, "endpoint_not_allowed", str(exc))
        except crypto.SecretsUnreadable as exc:
            return CheckOutcome(False, 0, None, "secrets_unreadable", str(exc))
    return CheckOutcome(True, elapsed(), page.request_id, None, None)


async def reencrypt_secrets(session: AsyncSession, settings: Settings) -> int:
    """Key rotation step 2: rewrite every stored secret under the first configured key (idempotent, system-wide)."""
    count = 0
    for account_id, connection_id in await connections.all_ids(session):
        connection = await connections.get_for_update(session, account_id, connection_id)
        for column in ("lwa_client_id_encrypted", "lwa_client_secret_encrypted", "lwa_refresh_token_encrypted"):
            value = getattr(connection, column)
            if value:
                setattr(connection, column, crypto.rotate(settings, value))
        count += 1
    return count


def connection_out(connection: VendorConnection) -> ConnectionOut:
    return ConnectionOut(
        id=connection.id,
        name=connection.name,
        region=connection.region,
        endpoint=connection.endpoint,
        marketplaces=list(connection.marketplaces),
        vendor_codes=list(connection.vendor_codes),
        credentials_updated_at=connection.credentials_updated_at,
        credentials_rotate_by=connection.credentials_rotate_by,
        sync_schedule=connection.sync_schedule,
        next_sync_at=connection.next_sync_at,
        status=ConnectionStatus(connection.status),
        last_success_at=connection.last_success_at,
        last_error=connection.last_error,
        warnings=warnings_for(connection),
        version=connection.version,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


async def warn_expiring_credentials(session: AsyncSession, today: date) -> int:
    """One ``connection.credentials_expiring`` event per connection and rotation date, from
    ``ROTATION_WARNING_DAYS`` before the date on (an expired date included); a second pass adds nothing."""
    count = 0
    for connection in await connections.rotating_by(session, today + timedelta(days=ROTATION_WARNING_DAYS)):
        assert connection.credentials_rotate_by is not None
        marker = {"id": str(connection.id), "credentials_rotate_by": connection.credentials_rotate_by.isoformat()}
        if await events.exists(session, connection.account_id, EventType.connection_credentials_expiring, marker):
            continue
        events.record(
            session, connection.account_id, EventType.connection_credentials_expiring, connection_out(connection)
        )
        count += 1
    return count
