"""Who is calling, and may they do this?

Every protected route names its scopes once, through a typed alias such as
``StoresRead = Annotated[Caller, Security(current_caller, scopes=["stores:read"])]``. FastAPI then puts
the scopes into the operation's OpenAPI security requirements, and :func:`current_caller` enforces them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2, SecurityScopes

from acorn_api.accounts.repository import api_keys
from acorn_api.accounts.scopes import SCOPES, grants, scopes_for
from acorn_api.accounts.secrets import split_prefix, verify_secret
from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import NotPermitted, Unauthorized
from acorn_api.core.time import utcnow

CredentialType = Literal["api_key", "oauth_client"]
LAST_USED_RESOLUTION = timedelta(minutes=1)

oauth2_scheme = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPES)),
    scheme_name="oauth2",
    description="OAuth2 client credentials: exchange a client id and secret at `/oauth/token` for a JWT.",
    auto_error=False,
)
api_key_scheme = HTTPBearer(
    scheme_name="api_key",
    bearerFormat="acn_<prefix>_<secret>",
    description="An API key sent as `Authorization: Bearer acn_...`.",
    auto_error=False,
)


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    credential_id: uuid.UUID
    credential_type: CredentialType
    scopes: frozenset[str]
    role: str | None = None
    token_id: str | None = field(default=None, compare=False)

    def can(self, scope: str) -> bool:
        return grants(self.scopes, scope)


def _unauthorized(detail: str, *, error: str = "invalid_token") -> Unauthorized:
    return Unauthorized(
        detail,
        code="invalid-credentials" if error else "unauthorized",
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )


async def _caller_from_api_key(session: Session, settings: AppSettings, secret: str) -> Caller:
    prefix = split_prefix(secret)
    key = await api_keys.find_by_prefix_for_authentication(session, prefix) if prefix else None
    if key is None or not verify_secret(secret, key.secret_hash, settings.api_key_pepper.get_secret_value()):
        raise _unauthorized("The API key is not valid.")
    now = utcnow()
    if key.revoked_at is not None:
        raise _unauthorized("The API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise _unauthorized("The API key has expired.")
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        await api_keys.touch_last_used(session, key.id, now)
    return Caller(
        account_id=key.account_id,
        credential_id=key.id,
        credential_type="api_key",
        scopes=scopes_for(key.role, key.scopes),
        role=key.role,
    )


async def authenticate(request: Request, session: Session, settings: AppSettings) -> Caller:
    """Resolve the bearer credential of the request into a :class:`Caller`, or raise 401."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "This endpoint needs a credential: `Authorization: Bearer <API key or access token>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Use the Bearer scheme: `Authorization: Bearer <token>`.", error="invalid_request")
    if token.count(".") == 2:
        from acorn_api.accounts.tokens import caller_from_access_token

        return await caller_from_access_token(request, session, settings, token)
    return await _caller_from_api_key(session, settings, token)


async def current_caller(
    security_scopes: SecurityScopes,
    request: Request,
    session: Session,
    settings: AppSettings,
    _oauth2: Annotated[str | None, Depends(oauth2_scheme)],
    _api_key: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key_scheme)],
) -> Caller:
    caller = await authenticate(request, session, settings)
    missing = [s for s in security_scopes.scopes if not caller.can(s)]
    if missing:
        raise NotPermitted(
            f"This credential lacks the scope(s) {', '.join(missing)}.",
            code="insufficient_scope",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'},
            required_scopes=missing,
        )
    request.state.caller = caller
    return caller


AnyCaller = Annotated[Caller, Depends(current_caller)]
