"""Pure ASGI middleware: request id, security headers, body size limit, access log and metrics."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acorn_api.core.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE
from acorn_api.core.logging import log_access
from acorn_api.core.metrics import REQUEST_COUNT, REQUEST_LATENCY

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("acorn_api.access")

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Gives every request an id (echoing a sane ``X-Request-ID``), logs it, counts it, and sets headers."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 0}
        behind_tls = self.hsts or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                # RateLimit-* of the caller's bucket, set by authentication (on success and errors alike).
                for name, value in scope["state"].get("rate_limit_headers", {}).items():
                    headers.setdefault(name, value)
                if behind_tls:
                    headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Answer here rather than in Starlette's outermost handler so that even a 500 carries the
            # request id and the security headers, and never a stack trace.
            log.exception("unhandled_error", path=scope["path"])
            if not response_started(status_holder):
                await send_with_headers(_internal_error_start())
                await send_with_headers(_internal_error_body(scope["path"], request_id))
        finally:
            elapsed = time.perf_counter() - started
            template = _route_template(scope)
            method = scope["method"]
            status = str(status_holder["status"] or 500)
            REQUEST_COUNT.labels(method, template, status).inc()
            REQUEST_LATENCY.labels(method, template).observe(elapsed)
            log_access(
                method=method,
                path=scope["path"],
                route=template,
                status=int(status),
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


def response_started(status_holder: dict[str, int]) -> bool:
    return status_holder["status"] != 0


_INTERNAL_ERROR_DETAIL = "Something went wrong on our side. Quote the request id when you report it."


def _internal_error_start() -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode())],
    }


def _internal_error_body(path: str, request_id: str) -> Message:
    body = {
        "type": PROBLEM_BASE + "internal",
        "title": "Internal error",
        "status": 500,
        "detail": _INTERNAL_ERROR_DETAIL,
        "instance": path,
        "request_id": request_id,
    }
    return {"type": "http.response.body", "body": orjson.dumps(body)}


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413, whether announced by Content-Length or streamed.

    ``path_limits`` gives a few exact paths (file uploads) their own, larger limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"].rstrip("/"), self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, send, limit)
            return
        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        replaced = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started, replaced
            if exceeded and not response_started and message["type"] == "http.response.start":
                # The app may have turned the interrupted read into an answer of its own (FastAPI makes any
                # error while reading a body a 400): a streamed body over the limit is a 413 all the same.
                response_started = replaced = True
                await self._reject(scope, send, limit)
                return
            if replaced:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(scope, send, limit)

    async def _reject(self, scope: Scope, send: Send, limit: int) -> None:
        state: dict[str, Any] = scope.setdefault("state", {})
        body = orjson.dumps(
            {
                "type": PROBLEM_BASE + "payload-too-large",
                "title": "Payload too large",
                "status": 413,
                "detail": f"The request body is larger than {limit} bytes.",
                "instance": scope["path"],
                "request_id": state.get("request_id"),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
