"""JWT access tokens (RFC 9068): issued by ``POST /oauth/token``, verified on every request.

A token is accepted only if its header says ``typ: at+jwt`` and ``alg: RS256`` with a ``kid`` that the
key ring lists, its signature verifies with that key, and ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat``
hold. Then the client it names must still be active: its state comes from the credential cache (a few
seconds old at most), so a revoked client's tokens stop working without a database read per request.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.cache import client_state, touch_sessions_for
from acorn_api.accounts.caller import Caller, unauthorized
from acorn_api.accounts.keys import ALGORITHM, KeyRing, key_ring
from acorn_api.accounts.scopes import grants
from acorn_api.settings import Settings

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
ACCOUNT_CLAIM = "account_id"
LEEWAY_SECONDS = 30
MAX_TOKEN_BYTES = 8192
MAX_VERIFIED_CACHE = 10_000


class InvalidToken(Exception):
    """Why a token was refused; the message goes into the 401's detail."""


@dataclass(frozen=True)
class VerifiedToken:
    client_id: str
    account_id: uuid.UUID
    scopes: frozenset[str]
    jti: str
    not_before: int
    expires: int


def issue_access_token(
    settings: Settings,
    *,
    client_id: str,
    account_id: uuid.UUID,
    scopes: list[str],
    now: int | None = None,
    ring: KeyRing | None = None,
) -> tuple[str, int]:
    """Sign an access token for a client; returns the token and its lifetime in seconds."""
    ring = ring or key_ring(settings)
    issued_at = int(time.time()) if now is None else now
    ttl = settings.access_token_ttl_seconds
    header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": ring.kid}
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": client_id,
        "client_id": client_id,
        "scope": " ".join(sorted(scopes)),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl,
        "jti": uuid.uuid4().hex,
        ACCOUNT_CLAIM: str(account_id),
    }
    return jwt.encode(header, claims, ring.signing_key, algorithms=[ALGORITHM]), ttl


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidToken("The access token is not a JWT.") from exc
    if not isinstance(header, dict):
        raise InvalidToken("The access token is not a JWT.")
    return header


def _verify(settings: Settings, ring: KeyRing, token: str, now: int) -> VerifiedToken:
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("The access token is too large.")
    header = _header(token)
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"Access tokens are signed with {ALGORITHM}.")
    if str(header.get("typ", "")).lower() not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
        raise InvalidToken("The token is not an access token (typ must be at+jwt).")
    key = ring.verification_keys.get(str(header.get("kid")))
    if key is None:
        raise InvalidToken("The access token was signed by an unknown key.")
    try:
        decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        JWTClaimsRegistry(
            now=now,
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": settings.jwt_issuer},
            aud={"essential": True, "value": settings.jwt_audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        ).validate(decoded.claims)
    except JoseError as exc:
        raise InvalidToken(f"The access token is not valid: {exc.description or exc.error}.") from exc
    claims = decoded.claims
    try:
        scope = claims.get("scope", "")
        client_id = claims["client_id"]
        if not isinstance(scope, str) or not isinstance(client_id, str) or client_id != claims["sub"]:
            raise ValueError("bad claim types")
        return VerifiedToken(
            client_id=client_id,
            account_id=uuid.UUID(str(claims[ACCOUNT_CLAIM])),
            scopes=frozenset(scope.split()),
            jti=str(claims["jti"]),
            not_before=int(claims["nbf"] if "nbf" in claims else claims["iat"]),
            expires=int(claims["exp"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidToken("The access token lacks the claims this API needs.") from exc


def verify_access_token(settings: Settings, token: str, *, ring: KeyRing | None = None) -> VerifiedToken:
    """Verify a token (signature once per process and token, time claims every time)."""
    ring = ring or key_ring(settings)
    now = int(time.time())
    verified: VerifiedToken | None = ring.verified.get(token)
    if verified is None:
        try:
            verified = _verify(settings, ring, token, now)
        except InvalidToken:
            raise
        except Exception as exc:  # whatever a hostile token trips over inside a library is still a 401
            raise InvalidToken("The access token is not valid.") from exc
        if len(ring.verified) >= MAX_VERIFIED_CACHE:
            ring.verified.clear()
        ring.verified[token] = verified
    if verified.expires <= now - LEEWAY_SECONDS:
        ring.verified.pop(token, None)
        raise InvalidToken("The access token has expired.")
    if verified.not_before > now + LEEWAY_SECONDS:
        raise InvalidToken("The access token is not valid yet.")
    return verified


async def caller_from_access_token(request: Request, session: AsyncSession, settings: Settings, token: str) -> Caller:
    try:
        verified = verify_access_token(settings, token)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    client = await client_state(
        session,
        settings,
        verified.client_id,
        touch_sessions=touch_sessions_for(request),
    )
    if client is None or client.account_id != verified.account_id:
        raise unauthorized("The access token's client does not exist.")
    problem = client.refusal()
    if problem:
        raise unauthorized(f"The access token's client {problem}.")
    return Caller(
        account_id=client.account_id,
        credential_id=client.id,
        credential_type="oauth_client",
        # A token carries at most what its client holds now.
        scopes=frozenset(s for s in verified.scopes if grants(client.scopes, s)),
        role=client.role,
        token_id=verified.jti,
        issued_to=client.issued_to,
    )
