"""``/metrics`` is not public: only a scraper holding ``ACORN_METRICS_TOKEN`` reads it (issue 12)."""

from __future__ import annotations

from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import SecretStr


def _with_token(app: FastAPI, token: str | None) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"metrics_token": SecretStr(token) if token is not None else None}
    )


async def test_metrics_without_a_configured_token_is_404(client: AsyncClient, app: FastAPI) -> None:
    _with_token(app, None)
    r = await client.get("/metrics")
    assert r.status_code == 404
    assert "acorn_http_requests_total" not in r.text


async def test_metrics_without_the_token_is_401(client: AsyncClient, app: FastAPI) -> None:
    _with_token(app, "s3cret-scrape-token")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-scrape-token"}):
        r = await client.get("/metrics", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == "application/problem+json"
        assert "acorn_http_requests_total" not in r.text


async def test_metrics_with_the_token_are_served(client: AsyncClient, app: FastAPI) -> None:
    _with_token(app, "s3cret-scrape-token")
    r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert r.status_code == 200
    assert "acorn_http_requests_total" in r.text
