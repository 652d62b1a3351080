"""The OAuth2 token endpoint (client credentials, RFC 6749 §4.4) and the JWKS that verifies its tokens.

authlib's server classes are synchronous and have no FastAPI integration, so the grant is implemented here
(it is small); tokens are signed with joserfc. Errors follow RFC 6749 §5.2 (``error``,
``error_description``) and carry the problem-details fields of the rest of the API alongside.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Form, Request

from acorn_api.accounts import service
from acorn_api.accounts.keys import key_ring
from acorn_api.accounts.schemas import Jwks, TokenError, TokenResponse
from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import PROBLEM_BASE, JSONResponse, TooManyRequests, problems
from acorn_api.core.ratelimit import Bucket, rate_limiter
from acorn_api.core.text_input import control_character_problem
from acorn_api.settings import Settings

router = APIRouter(tags=["oauth"])

MAX_CLIENT_ID = 64
MAX_SECRET = 256
MAX_SCOPE = 2048
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_TITLES = {400: "Bad request", 401: "Unauthorized"}


def _token_error(
    request: Request, error: str, description: str, status: int = 400, *, basic: bool = False
) -> JSONResponse:
    headers = dict(NO_STORE)
    if status == 401 and basic:
        headers["WWW-Authenticate"] = 'Basic realm="acorn", charset="UTF-8"'
    body: dict[str, Any] = {
        "error": error,
        "error_description": description,
        "type": PROBLEM_BASE + "oauth-" + error.replace("_", "-"),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": description,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: ``Basic base64(urlencode(id) ":" urlencode(secret))``; None if malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


async def _limit(request: Request, settings: Settings, client_id: str | None) -> None:
    """Per source address and per client id, in one Redis call: guessing secrets or hammering is slow."""
    if not settings.rate_limit_enabled or not settings.redis_url:
        return
    limiter = rate_limiter(settings.redis_url, settings.redis_key_prefix)
    address = request.client.host if request.client else "unknown"
    # One hash tag, so that both keys live in one Redis Cluster slot (a script may only touch one slot).
    buckets = [Bucket(limiter.key("{token}", "addr", address), settings.token_rate_limit_per_address)]
    if client_id:
        buckets.append(Bucket(limiter.key("{token}", "client", client_id), settings.token_rate_limit_per_client))
    result = await limiter.hit(*buckets)
    if result is None:
        return
    request.state.rate_limit_headers = result.headers()
    if not result.allowed:
        raise TooManyRequests(
            f"Too many token requests; retry in {result.headers()['Retry-After']} s.", headers=result.headers()
        )


@router.post(
    "/oauth/token",
    summary="Get an access token (OAuth2 client credentials)",
    description="Authenticate with HTTP Basic (`client_id:client_secret`) or with `client_id` and "
    "`client_secret` in the form body, send `grant_type=client_credentials` and optionally `scope` "
    "(space-separated, a subset of the client's scopes). The answer is a JWT access token (RFC 9068) to send as "
    "`Authorization: Bearer <token>`; verify it with `/.well-known/jwks.json`. Errors follow RFC 6749 §5.2.",
    operation_id="issue_token",
    response_model=TokenResponse,
    responses={
        400: {
            "model": TokenError,
            "description": "invalid_request, invalid_grant, invalid_scope, unsupported_grant_type",
        },
        401: {"model": TokenError, "description": "invalid_client"},
        422: problems(422)[422],
        429: problems(429)[429],
    },
)
async def issue_token(
    request: Request,
    session: Session,
    settings: AppSettings,
    grant_type: Annotated[str | None, Form(examples=["client_credentials"])] = None,
    scope: Annotated[str | None, Form(description="space-separated scopes")] = None,
    client_id: Annotated[str | None, Form(description="when not using HTTP Basic")] = None,
    client_secret: Annotated[str | None, Form(description="when not using HTTP Basic")] = None,
) -> JSONResponse:
    authorization = request.headers.get("authorization")
    basic = authorization is not None
    if authorization is not None:
        if client_id is not None or client_secret is not None:
            return _token_error(request, "invalid_request", "Use one client authentication method, not two.")
        credentials = _basic_credentials(authorization)
        if credentials is None:
            await _limit(request, settings, None)
            return _token_error(request, "invalid_client", "Malformed HTTP Basic credentials.", 401, basic=True)
        client_id, client_secret = credentials
    await _limit(request, settings, client_id[:MAX_CLIENT_ID] if client_id else None)
    if not client_id or not client_secret:
        return _token_error(request, "invalid_client", "Client authentication is required.", 401, basic=basic)
    if len(client_id) > MAX_CLIENT_ID or len(client_secret) > MAX_SECRET or len(scope or "") > MAX_SCOPE:
        return _token_error(request, "invalid_request", "A parameter is too long.")
    if control_character_problem(client_id + client_secret, multi_line=False):  # from HTTP Basic, decoded
        return _token_error(request, "invalid_client", "Client credentials hold control characters.", 401, basic=basic)
    if not grant_type:
        return _token_error(request, "invalid_request", "grant_type is required.")
    if grant_type != "client_credentials":
        return _token_error(request, "unsupported_grant_type", "Only grant_type=client_credentials is supported.")
    try:
        issued = await service.issue_token(
            session, settings, client_id=client_id, client_secret=client_secret, scope=scope
        )
    except service.TokenRequestError as exc:
        return _token_error(request, exc.error, exc.description, exc.status, basic=basic)
    body = TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in, scope=issued.scope)
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    summary="Public keys that verify access tokens",
    description="A JWK Set (RFC 7517). During a key rotation it lists the new and the old key; pick by `kid`.",
    operation_id="get_jwks",
    response_model=Jwks,
)
async def jwks(settings: AppSettings) -> JSONResponse:
    return JSONResponse(key_ring(settings).jwks, headers={"Cache-Control": "public, max-age=300"})
