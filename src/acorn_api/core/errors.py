"""One family of errors, rendered as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
import redis.exceptions
import sqlalchemy.exc
import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_BASE = "https://acorn.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

log = structlog.get_logger(__name__)


class JSONResponse(Response):
    """JSON rendered by orjson (no float surprises for Decimal-free bodies, and fast)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # integers beyond 64 bits (valid JSON) are beyond orjson
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where the error is: body, query, path or header, then the field")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the kind of problem", examples=[PROBLEM_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path")
    request_id: str | None = None
    errors: list[FieldError] | None = None


class AcornError(Exception):
    """Base of every error a service may raise on purpose; the handler turns it into a problem."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    code: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.instance_code = code or self.code
        self.errors = list(errors) if errors else None
        self.headers = headers or {}
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.instance_code.replace("_", "-")


class BadRequest(AcornError):
    status = 400
    title = "Bad request"
    code = "bad_request"


class Unauthorized(AcornError):
    status = 401
    title = "Unauthorized"
    code = "unauthorized"


class NotPermitted(AcornError):
    status = 403
    title = "Not permitted"
    code = "forbidden"


class NotFound(AcornError):
    status = 404
    title = "Not found"
    code = "not_found"


class Conflict(AcornError):
    status = 409
    title = "Conflict"
    code = "conflict"


class PreconditionFailed(AcornError):
    status = 412
    title = "Precondition failed"
    code = "precondition_failed"


class PayloadTooLarge(AcornError):
    status = 413
    title = "Payload too large"
    code = "payload_too_large"


class Unprocessable(AcornError):
    status = 422
    title = "Unprocessable content"
    code = "validation_error"


class TooManyRequests(AcornError):
    status = 429
    title = "Too many requests"
    code = "rate_limited"


class ServiceUnavailable(AcornError):
    status = 503
    title = "Service unavailable"
    code = "unavailable"


def field_error(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> FieldError:
    return FieldError(loc=list(loc), msg=msg, type=type_)


def invalid_field(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> Unprocessable:
    """A 422 naming one field, for rules that only the service can check."""
    return Unprocessable(f"{'.'.join(str(p) for p in loc)}: {msg}", errors=[field_error(loc, msg, type_)])


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    type_uri: str,
    detail: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": _request_id(request),
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


async def handle_acorn_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AcornError)
    return problem_response(
        request,
        status=exc.status,
        title=exc.title,
        type_uri=exc.type_uri,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


# pydantic names the branch of a union it tried inside ``loc`` ("function-after[_check(), constrained-str]",
# "str-enum[EventType]", "literal['*']", "constrained-str"): its internals (even a function's memory address),
# not a field of the API, whose names are snake_case
_UNION_BRANCH = re.compile(r"^(?:[a-z]+(?:-[a-z]+)+\[.*\]|[a-z]+\[.*\]|constrained-[a-z]+|lax-or-strict)$", re.S)


def _client_errors(raw: Sequence[Any]) -> list[FieldError]:
    """pydantic's errors as the client should see them: field paths only, without the union branches tried.

    For ``X | None`` pydantic reports a second error at ``[..., "none"]`` ("input should be None"): that branch
    is dropped, and the ``X`` branch's tag that follows the same path is removed from its ``loc``.
    """
    none_paths = [tuple(e["loc"][:-1]) for e in raw if e.get("type") == "none_required" and e.get("loc")]
    errors: list[FieldError] = []
    for e in raw:
        loc = list(e.get("loc", ()))
        if e.get("type") == "none_required" and len(raw) > 1:
            continue
        for path in none_paths:
            # a union's errors always carry the branch tag right after the path ("uuid", "str", a model name)
            if tuple(loc[: len(path)]) == path and len(loc) > len(path) and isinstance(loc[len(path)], str):
                del loc[len(path)]
                break
        loc = [p for p in loc if not (isinstance(p, str) and _UNION_BRANCH.match(p))]
        error = FieldError(loc=_loc(loc), msg=str(e.get("msg", "")), type=str(e.get("type", "")))
        if error not in errors:
            errors.append(error)
    return errors


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _client_errors(exc.errors())
    fields = ", ".join(".".join(str(p) for p in e.loc) for e in errors[:5])
    return problem_response(
        request,
        status=422,
        title="Unprocessable content",
        type_uri=PROBLEM_BASE + "validation-error",
        detail=f"The request is not valid: {fields}" if fields else "The request is not valid.",
        errors=errors,
    )


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if exc.status_code == 404 and detail is None:
        detail = f"No route matches {request.method} {request.url.path}."
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        if detail is None:
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}."
    return problem_response(
        request,
        status=exc.status_code,
        title=phrase,
        type_uri=PROBLEM_BASE + phrase.lower().replace(" ", "-"),
        detail=detail,
        headers=headers or None,
    )


_PATH_PARAM = re.compile(r"\\\{[^/]+?\\\}")


def _path_patterns(request: Request) -> list[tuple[re.Pattern[str], list[str]]]:
    """Every documented path as a regex, with its methods (cached on the app)."""
    cached: list[tuple[re.Pattern[str], list[str]]] | None = getattr(request.app.state, "path_methods", None)
    if cached is None:
        cached = []
        for path, item in request.app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + _PATH_PARAM.sub("[^/]+", re.escape(path)) + "$")
            cached.append((pattern, sorted(m.upper() for m in item if m in _HTTP_METHODS)))
        request.app.state.path_methods = cached
    return cached


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def allowed_methods(request: Request) -> list[str]:
    """All methods documented for the request's path: a 405's ``Allow`` lists them, not one route's."""
    matches = [(pattern, m) for pattern, m in _path_patterns(request) if pattern.match(request.url.path)]
    if not matches:
        return []
    # /v1/quotes/conflicts also fits /v1/quotes/{quote_id}; the path with the fewest parameters is the one meant.
    fewest = min(p.pattern.count("[^/]+") for p, _ in matches)
    return sorted({method for p, methods in matches if p.pattern.count("[^/]+") == fewest for method in methods})


#: Seconds a client is told to wait when PostgreSQL or Redis is unreachable; both usually come back within that.
UNAVAILABLE_RETRY_AFTER = 5
_CONNECTION_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.ENOENT,  # a Unix socket whose server is not running
}
_DRIVER_MODULES = ("asyncpg", "sqlalchemy", "redis", "arq")
#: SQLSTATEs a server sends while it cannot serve: connection exceptions (class 08), operator intervention
#: (57P01 admin shutdown, 57P02 crash shutdown, 57P03 "the database system is starting up / shutting down",
#: 57P05 idle session timeout) and too many connections (53300). SQLAlchemy wraps some of them in a plain
#: ``DBAPIError``, which alone says nothing about the cause.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53300")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _raised_in(exc: BaseException, modules: tuple[str, ...]) -> bool:
    """Whether a frame of the exception's traceback belongs to one of these packages."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(modules):
            return True
        tb = tb.tb_next
    return False


def unavailable_dependency(exc: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when the error means that server cannot be reached right now, else ``None``.

    Covers a refused or dropped connection (asyncpg, SQLAlchemy's ``OperationalError``/``InterfaceError`` or an
    invalidated connection, the pool's timeout, redis-py's ``ConnectionError``/``TimeoutError``) and the plain
    ``OSError`` a driver raises while connecting. Errors of the request itself (a constraint, bad SQL) are not.
    """
    for error in _chain(exc):
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return "redis"
        if isinstance(error, sqlalchemy.exc.TimeoutError):
            return "database"
        if isinstance(error, sqlalchemy.exc.DBAPIError) and (
            error.connection_invalidated
            or isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)
        ):
            return "database"
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
            return "database"
        if isinstance(error, ConnectionError | TimeoutError) or (
            isinstance(error, OSError) and error.errno in _CONNECTION_ERRNOS and _raised_in(error, _DRIVER_MODULES)
        ):
            return "redis" if _raised_in(error, ("redis", "arq")) else "database"
    return None


def unavailable_response(request: Request, dependency: str) -> JSONResponse:
    name = "The database" if dependency == "database" else "The queue (Redis)"
    return problem_response(
        request,
        status=503,
        title="Service unavailable",
        type_uri=PROBLEM_BASE + "unavailable",
        detail=f"{name} is unavailable for a moment; retry after {UNAVAILABLE_RETRY_AFTER} seconds.",
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


#: Handled by ``handle_dependency_error`` (registered in ``main``) before they reach the last-resort handler.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.DBAPIError,  # OperationalError, InterfaceError, a connection invalidated mid-statement
    sqlalchemy.exc.TimeoutError,  # no pooled connection within the pool timeout
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,  # ConnectionRefusedError, TimeoutError, a missing Unix socket while connecting
)


async def handle_dependency_error(request: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL or Redis out of reach: 503 problem+json with ``Retry-After``; other errors of these kinds: 500."""
    return await handle_unexpected(request, exc)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """The last resort: a dependency outage is a 503 with ``Retry-After``; anything else a logged 500."""
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        log.warning("dependency_unavailable", dependency=dependency, error_type=type(exc).__name__)
        return unavailable_response(request, dependency)
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return problem_response(
        request,
        status=500,
        title="Internal error",
        type_uri=PROBLEM_BASE + "internal",
        detail="Something went wrong on our side. Quote the request id when you report it.",
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route can answer (401 and 422 always)."""
    descriptions = {
        400: "The body could not be parsed (not JSON, wrong encoding) or the request is malformed",
        401: "No, expired or invalid credential",
        403: "The credential lacks a required scope, or a rule forbids the action",
        404: "No such resource in the caller's account",
        409: "Conflict with the current state (duplicate, stale version, idempotency key reuse)",
        412: "If-Match does not match the current version",
        413: "Request body too large",
        422: "Invalid input; `errors` names each field and the reason",
        429: "Rate limit exceeded; retry after `Retry-After` seconds",
        503: "The database or the queue is unavailable for a moment; retry after `Retry-After` seconds",
    }
    wanted = sorted({400, 401, 422, 429, 503, *statuses})
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in wanted
    }
