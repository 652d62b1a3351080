"""Liveness, readiness and metrics: unauthenticated, for the platform."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import text

from acorn_api.core.db import get_resources
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


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"}},
)
async def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
