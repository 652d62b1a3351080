"""Typed SP-API / LWA errors built from the ``{"errors": [{"code", "message", "details"}]}`` envelope."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    code: str
    message: str
    details: str | None = None


class SpApiError(Exception):
    """Base of every error raised by the SP-API connector.

    ``kind`` is a short stable label used in call statistics; ``retryable`` tells the client whether
    the same request may succeed if repeated.
    """

    kind: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        errors: tuple[ErrorDetail, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.status = status
        self.request_id = request_id
        self.errors = errors

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.insert(0, f"[{self.code}]")
        if self.details:
            parts.append(f"({self.details})")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)

    @classmethod
    def from_response(cls, status: int, body: bytes, request_id: str | None) -> SpApiError:
        """Build the typed error for an HTTP error response (``cls`` is ignored; the status decides)."""
        errors = parse_error_envelope(body)
        error_cls = error_class_for_status(status)
        if errors:
            first = errors[0]
            return error_cls(
                first.message,
                code=first.code,
                details=first.details,
                status=status,
                request_id=request_id,
                errors=errors,
            )
        return error_cls(f"HTTP {status}", status=status, request_id=request_id)


class SpApiThrottled(SpApiError):
    kind = "throttled"
    retryable = True


class SpApiServerError(SpApiError):
    kind = "server_error"
    retryable = True


class SpApiUnauthorized(SpApiError):
    """401/403: access token expired, revoked or access denied."""

    kind = "unauthorized"


class SpApiNotFound(SpApiError):
    kind = "not_found"


class SpApiBadRequest(SpApiError):
    kind = "bad_request"


class SpApiTimeout(SpApiError):
    kind = "timeout"
    retryable = True


class SpApiConnectionError(SpApiError):
    kind = "connection"
    retryable = True


class SpApiMalformedResponse(SpApiError):
    """Unparseable / truncated JSON, or a body that does not validate against the wire model."""

    kind = "malformed"
    retryable = True


class SpApiEndpointRefused(SpApiError):
    """The URL a call would reach is not allowed (host not on the allow-list, or an internal address)."""

    kind = "endpoint_refused"


class SpApiTooLarge(SpApiError):
    """A report document (or its decompressed body) is larger than the configured cap."""

    kind = "too_large"


class SpApiRateLimitWait(SpApiError):
    """Waiting for a rate-limit token would take longer than the configured maximum."""

    kind = "rate_limit_wait"


class LwaAuthError(SpApiError):
    """LWA token exchange rejected (``error`` is the LWA error code, e.g. ``invalid_grant``)."""

    kind = "lwa_auth"

    def __init__(self, message: str, *, error: str, status: int | None = None) -> None:
        super().__init__(message, code=error, status=status)
        self.error = error


class LwaUnavailable(LwaAuthError):
    """LWA could not be reached or answered 5xx / throttled: transient."""

    kind = "lwa_unavailable"
    retryable = True


def error_class_for_status(status: int) -> type[SpApiError]:
    if status == 429:
        return SpApiThrottled
    if status >= 500:
        return SpApiServerError
    if status in (401, 403):
        return SpApiUnauthorized
    if status == 404:
        return SpApiNotFound
    if 400 <= status < 500:
        return SpApiBadRequest
    return SpApiError


def parse_error_envelope(body: bytes) -> tuple[ErrorDetail, ...]:
    """Parse the SP-API error envelope; returns ``()`` when the body is not one."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(data, dict):
        return ()
    raw_errors = data.get("errors")
    if not isinstance(raw_errors, list):
        return ()
    out: list[ErrorDetail] = []
    for item in raw_errors:
        if not isinstance(item, dict):
            continue
        details = item.get("details")
        out.append(
            ErrorDetail(
                code=str(item.get("code", "")),
                message=str(item.get("message", "")),
                details=None if details is None else str(details),
            )
        )
    return tuple(out)
