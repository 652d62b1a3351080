"""Login with Amazon (LWA) refresh-token exchange and a per-connection access-token cache."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped,unused-ignore]

from acorn_api.amazon.errors import LwaAuthError, LwaUnavailable
from acorn_api.core.netguard import UnsafeURL

with warnings.catch_warnings():
    # authlib >= 1.7 prefers the "httpx2" package and warns when it falls back to httpx; the
    # fallback is exactly what we want (httpx is the HTTP stack of the whole service).
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped,unused-ignore]
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped,unused-ignore]

#: LWA error codes that mean "try again later" rather than "these credentials are bad".
_TRANSIENT_LWA_ERRORS = frozenset({"server_error", "temporarily_unavailable", "ServerError"})


@dataclass(frozen=True, slots=True)
class LwaCredentials:
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LwaToken:
    access_token: str = field(repr=False)
    expires_in: float


TokenExchanger = Callable[[str, LwaCredentials], Awaitable[LwaToken]]


class AuthlibLwaExchanger:
    """Exchanges a refresh token for an access token through authlib's ``AsyncOAuth2Client``.

    A short-lived ``AsyncOAuth2Client`` is opened per exchange: the client holds per-app state
    (client id/secret, last token), exchanges happen about once an hour per connection, and this
    keeps concurrent exchanges for different connections fully independent.
    """

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._timeout = timeout
        self._transport = transport
        self._transport_factory = transport_factory

    async def __call__(self, token_url: str, credentials: LwaCredentials) -> LwaToken:
        # never follow a redirect: the form carries the client secret and the refresh token
        kwargs: dict[str, Any] = {"timeout": self._timeout, "follow_redirects": False, "trust_env": False}
        if self._transport_factory is not None:
            kwargs["transport"] = self._transport_factory()  # the client closes it: one per exchange
        elif self._transport is not None:
            kwargs["transport"] = self._transport
        try:
            async with AsyncOAuth2Client(
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                # LWA wants client_id/client_secret in the form body
                token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
                **kwargs,
            ) as oauth:
                token: dict[str, Any] = await oauth.refresh_token(token_url, refresh_token=credentials.refresh_token)
        except OAuthError as exc:
            error = str(getattr(exc, "error", "") or "unknown_error")
            description = str(getattr(exc, "description", "") or error)
            err_cls = LwaUnavailable if error in _TRANSIENT_LWA_ERRORS else LwaAuthError
            raise err_cls(f"LWA token exchange failed: {description}", error=error) from exc
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status >= 500 or status == 429:
                raise LwaUnavailable(
                    f"LWA token endpoint answered HTTP {status}", error="http_error", status=status
                ) from exc
            raise LwaAuthError(f"LWA token endpoint answered HTTP {status}", error="http_error", status=status) from exc
        except httpx.TimeoutException as exc:
            raise LwaUnavailable("LWA token endpoint timed out", error="timeout") from exc
        except httpx.TransportError as exc:
            raise LwaUnavailable(f"LWA token endpoint unreachable: {exc!r}", error="connection") from exc
        except UnsafeURL as exc:
            raise LwaAuthError(f"LWA token endpoint refused: {exc}", error="endpoint_refused") from exc
        except ValueError as exc:  # non-JSON body from authlib's parser
            raise LwaUnavailable(f"LWA token endpoint sent an unparseable body: {exc}", error="malformed") from exc

        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise LwaUnavailable("LWA response carries no access_token", error="malformed")
        try:
            expires_in = float(token.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        return LwaToken(access_token=access_token, expires_in=expires_in)


@dataclass(slots=True)
class _CachedToken:
    access_token: str
    refresh_at: float


class LwaTokenCache:
    """Access tokens per connection key, refreshed ``refresh_margin`` seconds before they expire.

    Concurrent callers for one key share a single refresh (one ``asyncio.Lock`` per key).  One cache
    per worker process; it is safe to share between all ``SpApiClient`` instances of that worker.
    """

    def __init__(
        self,
        *,
        exchanger: TokenExchanger | None = None,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange: TokenExchanger = exchanger or AuthlibLwaExchanger()
        self._margin = refresh_margin
        self._clock = clock
        self._tokens: dict[str, _CachedToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.refresh_count = 0

    def _valid(self, key: str) -> str | None:
        cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.access_token
        return None

    async def get(self, key: str, token_url: str, credentials: LwaCredentials) -> str:
        """Return a valid access token for ``key``, exchanging the refresh token if needed."""
        token = self._valid(key)
        if token is not None:
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._valid(key)  # somebody else may have refreshed while we waited
            if token is not None:
                return token
            fresh = await self._exchange(token_url, credentials)
            self.refresh_count += 1
            lifetime = max(fresh.expires_in - self._margin, 0.0)
            self._tokens[key] = _CachedToken(fresh.access_token, self._clock() + lifetime)
            return fresh.access_token

    def invalidate(self, key: str, access_token: str | None = None) -> None:
        """Forget the cached token for ``key`` (Amazon said it expired / is invalid).

        With ``access_token`` the entry is only dropped if it is still that token, so many requests
        failing with the same stale token cause one refresh, not one per request.
        """
        cached = self._tokens.get(key)
        if cached is None:
            return
        if access_token is None or cached.access_token == access_token:
            del self._tokens[key]
