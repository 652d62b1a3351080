"""The application factory: middleware, error handlers, routers and the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from acorn_api import health
from acorn_api.accounts.oauth_router import router as oauth_router
from acorn_api.accounts.router import router as accounts_router
from acorn_api.amazon.router import router as vendor_router
from acorn_api.catalog.router import router as items_router
from acorn_api.core import errors
from acorn_api.core.db import Resources, make_engine, make_sessionmaker
from acorn_api.core.docs import install_docs
from acorn_api.core.idempotency import IdempotentReplay, handle_replay
from acorn_api.core.jobs import queue_settings
from acorn_api.core.logging import configure_logging
from acorn_api.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from acorn_api.core.openapi_links import add_links
from acorn_api.core.text_input import ControlCharacterMiddleware
from acorn_api.ledger.router import ROUTERS as LEDGER_ROUTERS
from acorn_api.quotes.router import policy_router as quote_policy_router
from acorn_api.quotes.router import prices_router
from acorn_api.quotes.router import router as quotes_router
from acorn_api.reconciliation.router import analytics_router
from acorn_api.reconciliation.router import router as reconciliation_router
from acorn_api.refunds.router import router as refund_cases_router
from acorn_api.refunds.router import rules_router as case_rules_router
from acorn_api.refunds.router import settings_router as case_settings_router
from acorn_api.settings import Settings, get_settings
from acorn_api.stores.router import router as stores_router
from acorn_api.webhooks.router import events_router
from acorn_api.webhooks.router import router as webhook_endpoints_router

API_DESCRIPTION = """\
ACORN API runs the back office of brands that sell to Amazon as Vendors (1P): purchase orders,
invoices, remittances, deductions and their disputes, store quotes and reconciliation.

* **Auth**: `Authorization: Bearer <API key or OAuth2 access token>`; each operation lists its scopes.
* **Errors**: RFC 9457 `application/problem+json` with `errors[]` naming each bad field.
* **Lists**: cursor pagination (`limit`, `cursor` → `data`, `next_cursor`, `has_more`), newest first.
* **Idempotency**: POSTs that create accept `Idempotency-Key` (kept 24 h).
* **Money**: `{"amount": "1234.50", "currency": "USD"}`, amounts as decimal strings. Times: UTC, RFC 3339.
"""

ROUTERS = [
    health.router,
    oauth_router,
    accounts_router,
    stores_router,
    items_router,
    quotes_router,
    quote_policy_router,
    prices_router,
    vendor_router,
    *LEDGER_ROUTERS,
    refund_cases_router,
    case_rules_router,
    case_settings_router,
    events_router,
    webhook_endpoints_router,
    reconciliation_router,
    analytics_router,
]


async def open_resources(settings: Settings) -> Resources:
    engine = make_engine(settings, command_timeout=settings.database_command_timeout)
    if not settings.redis_url:
        raise RuntimeError("no Redis configured: set ACORN_REDIS_URL or use `acorn-api dev`")
    redis = await create_pool(queue_settings(settings.redis_url), default_queue_name=settings.arq_queue_name)
    return Resources(engine=engine, sessionmaker=make_sessionmaker(engine), redis=redis)


async def close_resources(resources: Resources) -> None:
    await resources.redis.aclose()
    if resources.engine is not None:
        await resources.engine.dispose()


def _required_scopes(route: APIRoute) -> list[str]:
    found: list[str] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        for scope in dependant.own_oauth_scopes or []:
            if scope not in found:
                found.append(scope)
        stack.extend(dependant.dependencies)
    return found


SCOPES_NOTE = "**Required scopes:** "
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def document_scopes(router: APIRouter) -> None:
    """Append each operation's required scopes to its description, from the one place they are declared."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or SCOPES_NOTE in (route.description or ""):
            continue
        scopes = _required_scopes(route)
        if scopes:
            note = SCOPES_NOTE + ", ".join(f"`{s}`" for s in scopes) + " (or `admin`)."
            route.description = f"{route.description}\n\n{note}" if route.description else note


def create_app(settings: Settings | None = None, *, resources: Resources | None = None) -> FastAPI:
    """Build the app. Tests pass ``resources`` to run it on their own database connection."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        owned = None
        if getattr(app.state, "resources", None) is None:
            owned = app.state.resources = await open_resources(settings)
        # Everything built at startup (routes, models, schemas) lives as long as the process: keep it out of
        # the garbage collector's full passes, which otherwise walk it again and again under load.
        gc.collect()
        gc.freeze()
        try:
            yield {}
        finally:
            if owned is not None:
                await close_resources(owned)
                app.state.resources = None

    docs = not settings.is_production
    app = FastAPI(
        title="ACORN API",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by core/docs.py from installed assets, not a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,  # the contract is published in the repository
    )
    app.state.settings = settings
    app.state.resources = resources
    if docs:
        install_docs(app)

    app.add_exception_handler(IdempotentReplay, handle_replay)
    app.add_exception_handler(errors.AcornError, errors.handle_acorn_error)
    app.add_exception_handler(RequestValidationError, errors.handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, errors.handle_http_exception)
    for outage in errors.DEPENDENCY_ERRORS:  # a database or Redis outage is a 503 with Retry-After, not a 500
        app.add_exception_handler(outage, errors.handle_dependency_error)
    app.add_exception_handler(Exception, errors.handle_unexpected)

    # Added last = outermost: the request id exists before anything else runs. Control characters are
    # checked inside the body limit, so the body it reads is already bounded.
    app.add_middleware(ControlCharacterMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # a report file plus the few bytes of its multipart envelope and form fields
        path_limits={"/v1/imports": settings.max_import_bytes + MULTIPART_OVERHEAD_BYTES},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"],
            expose_headers=["X-Request-ID", "ETag", "Location", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, hsts=settings.is_production)

    for router in ROUTERS:
        document_scopes(router)
        app.include_router(router)
    _link_operations(app)
    return app


def _link_operations(app: FastAPI) -> None:
    """Build the OpenAPI document with links between operations (core/openapi_links.py)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_links(build())
        return build()

    app.openapi = openapi  # type: ignore[method-assign]
