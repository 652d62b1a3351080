"""Liveness, readiness and metrics: unauthenticated, for the platform."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import text

from acorn_api.core.db import get_resources
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import NotFound, Unauthorized, problems
from acorn_api.core.metrics import render_metrics

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    redis: str


@router.get("/healthz", summary="Is the process up", operation_id="healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Are the database and Redis reachable",
    operation_id="readyz",
    responses={503: {"model": Readiness, "description": "a dependency is not reachable"}},
)
async def readyz(request: Request, response: Response) -> Readiness:
    resources = get_resources(request)

    async def check_database() -> str:
        async with resources.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        return "ok"

    async def check_redis() -> str:
        await resources.redis.ping()
        return "ok"

    results = await asyncio.gather(
        asyncio.wait_for(check_database(), 2), asyncio.wait_for(check_redis(), 2), return_exceptions=True
    )
    database, redis = (r if isinstance(r, str) else "unreachable" for r in results)
    ready = database == "ok" and redis == "ok"
    if not ready:
        response.status_code = 503
    return Readiness(status="ok" if ready else "unavailable", database=database, redis=redis)


METRICS_DESCRIPTION = (
    "Prometheus text format. Not public: served only to a scraper that sends "
    "`Authorization: Bearer <ACORN_METRICS_TOKEN>`; without that setting the route answers 404, with a "
    "missing or wrong token 401."
)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=METRICS_DESCRIPTION,
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"},
        **{k: v for k, v in problems(404).items() if k in (401, 404)},
    },
)
async def metrics(request: Request, settings: AppSettings) -> Response:
    if settings.metrics_token is None:
        raise NotFound("No route matches GET /metrics.")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise Unauthorized(
            "Send the metrics token: `Authorization: Bearer <ACORN_METRICS_TOKEN>`.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
