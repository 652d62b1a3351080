"""HTTP for credential management (/v1/oauth-clients, /v1/api-keys) and the audit log (/v1/audit-events).

Creating a credential does not take ``Idempotency-Key``: the stored replay would have to keep the one-time
secret in clear, which is exactly what hashing it avoids. A retried create makes a second credential; list
and revoke the spare.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from acorn_api.accounts import service
from acorn_api.accounts.auth import AdminCaller, AuditRead
from acorn_api.accounts.models import ApiKey, OAuthClient
from acorn_api.accounts.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    AuditEventOut,
    CredentialCreate,
    OAuthClientCreated,
    OAuthClientOut,
)
from acorn_api.accounts.scopes import scopes_for
from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import problems
from acorn_api.core.pagination import Page, Pagination
from acorn_api.core.time import UTCDateTime

router = APIRouter(prefix="/v1", tags=["credentials"])

IncludeRevoked = Annotated[bool, Query(description="also list revoked credentials")]


def api_key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut.model_validate(
        {
            **{f: getattr(key, f) for f in ApiKeyOut.model_fields if f != "scopes"},
            "scopes": sorted(scopes_for(key.role, key.scopes)),
        }
    )


def client_out(client: OAuthClient) -> OAuthClientOut:
    return OAuthClientOut.model_validate(
        {
            **{f: getattr(client, f) for f in OAuthClientOut.model_fields if f != "scopes"},
            "scopes": sorted(scopes_for(client.role, client.scopes)),
        }
    )


# --- OAuth clients ---------------------------------------------------------------------------------------


@router.post(
    "/oauth-clients",
    status_code=status.HTTP_201_CREATED,
    summary="Create an OAuth client",
    description="Give `role` or `scopes`. The response holds `client_secret` once; only its hash is kept.",
    operation_id="create_oauth_client",
    responses=problems(400, 403),
)
async def create_oauth_client(
    body: CredentialCreate, caller: AdminCaller, session: Session, settings: AppSettings
) -> OAuthClientCreated:
    client, secret = await service.create_oauth_client(session, settings, caller, body)
    return OAuthClientCreated(**client_out(client).model_dump(), client_secret=secret)


@router.get("/oauth-clients", summary="List OAuth clients", operation_id="list_oauth_clients", responses=problems(403))
async def list_oauth_clients(
    caller: AdminCaller, session: Session, page: Pagination, include_revoked: IncludeRevoked = False
) -> Page[OAuthClientOut]:
    result = await service.list_oauth_clients(session, caller, page, include_revoked=include_revoked)
    return Page.of(result, client_out)


@router.delete(
    "/oauth-clients/{oauth_client_id}",
    summary="Revoke an OAuth client",
    description="The client gets no new tokens and its live tokens stop working. Revoking the account's last "
    "admin credential is refused with 409.",
    operation_id="revoke_oauth_client",
    responses=problems(403, 404, 409),
)
async def revoke_oauth_client(oauth_client_id: uuid.UUID, caller: AdminCaller, session: Session) -> OAuthClientOut:
    return client_out(await service.revoke_oauth_client(session, caller, oauth_client_id))


@router.post(
    "/oauth-clients/{oauth_client_id}/rotate-secret",
    summary="Give an OAuth client a new secret",
    description="The old secret stops working at once; tokens already issued stay valid until they expire.",
    operation_id="rotate_oauth_client_secret",
    responses=problems(403, 404, 409),
)
async def rotate_oauth_client_secret(
    oauth_client_id: uuid.UUID, caller: AdminCaller, session: Session, settings: AppSettings
) -> OAuthClientCreated:
    client, secret = await service.rotate_client_secret(session, settings, caller, oauth_client_id)
    return OAuthClientCreated(**client_out(client).model_dump(), client_secret=secret)


# --- API keys --------------------------------------------------------------------------------------------


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    description="Give `role` or `scopes`. The response holds `key` once; only its hash is kept.",
    operation_id="create_api_key",
    responses=problems(400, 403),
)
async def create_api_key(
    body: CredentialCreate, caller: AdminCaller, session: Session, settings: AppSettings
) -> ApiKeyCreated:
    key, secret = await service.create_api_key(session, settings, caller, body)
    return ApiKeyCreated(**api_key_out(key).model_dump(), key=secret)


@router.get("/api-keys", summary="List API keys", operation_id="list_api_keys", responses=problems(403))
async def list_api_keys(
    caller: AdminCaller, session: Session, page: Pagination, include_revoked: IncludeRevoked = False
) -> Page[ApiKeyOut]:
    result = await service.list_api_keys(session, caller, page, include_revoked=include_revoked)
    return Page.of(result, api_key_out)


@router.delete(
    "/api-keys/{api_key_id}",
    summary="Revoke an API key",
    description="Revoking the account's last admin credential is refused with 409.",
    operation_id="revoke_api_key",
    responses=problems(403, 404, 409),
)
async def revoke_api_key(api_key_id: uuid.UUID, caller: AdminCaller, session: Session) -> ApiKeyOut:
    return api_key_out(await service.revoke_api_key(session, caller, api_key_id))


@router.post(
    "/api-keys/{api_key_id}/roll",
    summary="Give an API key a new secret",
    description="The response holds the new `key` once. The old secret keeps working until "
    "`previous_valid_until` (24 h by default) so that deployments can switch without downtime; rolling "
    "again ends the previous grace at once.",
    operation_id="roll_api_key",
    responses=problems(403, 404, 409),
)
async def roll_api_key(
    api_key_id: uuid.UUID, caller: AdminCaller, session: Session, settings: AppSettings
) -> ApiKeyCreated:
    key, secret = await service.roll_api_key(session, settings, caller, api_key_id)
    return ApiKeyCreated(**api_key_out(key).model_dump(), key=secret)


# --- audit log -------------------------------------------------------------------------------------------


@router.get(
    "/audit-events",
    summary="List audit events",
    description="Every change made through the API, newest first.",
    operation_id="list_audit_events",
    tags=["audit"],
    responses=problems(403),
)
async def list_audit_events(
    caller: AuditRead,
    session: Session,
    page: Pagination,
    resource_type: Annotated[str | None, Query(max_length=50, examples=["store"])] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=100, examples=["store.updated"])] = None,
    actor_id: Annotated[uuid.UUID | None, Query(description="the credential that made the change")] = None,
    since: Annotated[UTCDateTime | None, Query(description="events at or after this time")] = None,
    until: Annotated[UTCDateTime | None, Query(description="events before this time")] = None,
) -> Page[AuditEventOut]:
    result = await service.list_audit_events(
        session,
        caller,
        page,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        actor_id=actor_id,
        since=since,
        until=until,
    )
    return Page.of(result, AuditEventOut.model_validate)
