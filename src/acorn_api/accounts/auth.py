"""Who is calling, and may they do this?

Every protected route names its scopes once, through a typed alias such as
``StoresRead = Annotated[Caller, Security(current_caller, scopes=["stores:read"])]``. FastAPI then puts
the scopes into the operation's OpenAPI security requirements, and :func:`current_caller` enforces them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2, SecurityScopes
from starlette.requests import HTTPConnection

from acorn_api.accounts.cache import api_key_state, touch_sessions_for
from acorn_api.accounts.caller import Caller, CredentialType, unauthorized
from acorn_api.accounts.scopes import SCOPES
from acorn_api.accounts.tokens import caller_from_access_token
from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import NotPermitted, TooManyRequests, Unauthorized
from acorn_api.core.ratelimit import Bucket, rate_limiter
from acorn_api.settings import Settings


class _DocumentedOAuth2(OAuth2):
    """Declares the OAuth2 scheme in the OpenAPI document; :func:`authenticate` reads the header (once)."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        return None


class _DocumentedBearer(HTTPBearer):
    """Declares the API key scheme in the OpenAPI document; :func:`authenticate` reads the header (once)."""

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        return None


oauth2_scheme = _DocumentedOAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPES)),
    scheme_name="oauth2",
    description="OAuth2 client credentials: exchange a client id and secret at `/oauth/token` for a JWT.",
    auto_error=False,
)
api_key_scheme = _DocumentedBearer(
    scheme_name="api_key",
    bearerFormat="acn_<prefix>_<secret>",
    description="An API key sent as `Authorization: Bearer acn_...`.",
    auto_error=False,
)


__all__ = ["Caller", "CredentialType", "current_caller", "unauthorized"]
_unauthorized = unauthorized  # the name the first version exported


def _source_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _failure_buckets(request: Request, settings: Settings, prefix: str | None) -> list[Bucket]:
    limiter = rate_limiter(settings.redis_url or "", settings.redis_key_prefix)
    # One hash tag, so that both keys live in one Redis Cluster slot (a script may only touch one slot).
    buckets = [
        Bucket(
            limiter.key("{authfail}", "addr", _source_address(request)), settings.auth_failures_per_minute_per_address
        )
    ]
    if prefix:
        buckets.append(
            Bucket(limiter.key("{authfail}", "prefix", prefix), settings.auth_failures_per_minute_per_key_prefix)
        )
    return buckets


def _too_many_failures(headers: dict[str, str]) -> TooManyRequests:
    return TooManyRequests(
        f"Too many failed authentications from this address or for this key; retry in {headers['Retry-After']} s.",
        headers=headers,
    )


async def _caller_from_api_key(request: Request, session: Session, settings: AppSettings, secret: str) -> Caller:
    """Resolve an API key. Failed lookups are limited per source address and per key prefix, checked before the
    database is asked and charged only when it matched nothing; a rejected secret is remembered briefly."""
    limited = settings.rate_limit_enabled and bool(settings.redis_url)

    async def charge(prefix: str, cost: int) -> None:
        if not limited:
            return
        limiter = rate_limiter(settings.redis_url or "", settings.redis_key_prefix)
        result = await limiter.hit(*_failure_buckets(request, settings, prefix), cost=cost)
        if result is not None and not result.allowed:
            raise _too_many_failures(result.headers())

    async def before_lookup(prefix: str) -> None:
        await charge(prefix, 0)  # only asks: refuse before the query when the buckets are empty

    async def after_rejection(prefix: str) -> None:
        await charge(prefix, 1)

    state = await api_key_state(
        session,
        settings,
        secret,
        before_lookup=before_lookup,
        after_rejection=after_rejection,
        touch_sessions=touch_sessions_for(request),
    )
    if state is None:
        raise unauthorized("The API key is not valid.")
    problem = state.refusal()
    if problem:
        raise unauthorized(f"The API key {problem}.")
    return Caller(
        account_id=state.account_id,
        credential_id=state.id,
        credential_type="api_key",
        scopes=state.scopes,
        role=state.role,
        issued_to=state.issued_to,
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
        raise unauthorized("Use the Bearer scheme: `Authorization: Bearer <token>`.", error="invalid_request")
    if token.count(".") == 2:
        return await caller_from_access_token(request, session, settings, token)
    return await _caller_from_api_key(request, session, settings, token)


def rate_limit_of(caller: Caller, settings: Settings) -> int:
    limits = settings.rate_limits_per_minute
    return limits.get(caller.role or "scoped") or limits.get("scoped") or 600


async def enforce_rate_limit(request: Request, caller: Caller, settings: Settings) -> None:
    """Charge the caller's bucket (one Redis round trip); 429 when it is empty. Headers go on the response."""
    if not settings.rate_limit_enabled or not settings.redis_url or getattr(request.state, "rate_limited", False):
        return
    request.state.rate_limited = True
    limiter = rate_limiter(settings.redis_url, settings.redis_key_prefix)
    result = await limiter.hit(Bucket(limiter.key("cred", str(caller.credential_id)), rate_limit_of(caller, settings)))
    if result is None:
        return
    headers = result.headers()
    request.state.rate_limit_headers = headers
    if not result.allowed:
        raise TooManyRequests(
            f"This credential may make {result.limit} requests a minute; retry in {headers['Retry-After']} s.",
            headers=headers,
        )


async def current_caller(
    security_scopes: SecurityScopes,
    request: Request,
    session: Session,
    _oauth2: Annotated[str | None, Depends(oauth2_scheme)],
    _api_key: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key_scheme)],
) -> Caller:
    # Several security dependencies on one route (different scopes) resolve the credential once.
    caller: Caller | None = getattr(request.state, "authenticated", None)
    if caller is None:
        # Read directly rather than through the AppSettings dependency: one node fewer to solve per request.
        settings: Settings = request.app.state.settings
        caller = await authenticate(request, session, settings)
        request.state.authenticated = caller
        await enforce_rate_limit(request, caller, settings)
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
AdminCaller = Annotated[Caller, Security(current_caller, scopes=["admin"])]
AuditRead = Annotated[Caller, Security(current_caller, scopes=["audit:read"])]
