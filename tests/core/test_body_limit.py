"""A streamed (chunked, no Content-Length) body over the limit is a 413, like an announced one (issue 12)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI
from httpx import AsyncClient

from tests.conftest import Tenant

CHUNK = b" " * 65536


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b"{"
    sent = 1
    while sent < total:
        yield CHUNK
        sent += len(CHUNK)
    yield b"}"


async def test_a_50_mb_chunked_body_is_413_not_400(client: AsyncClient, account: Tenant, app: FastAPI) -> None:
    r = await client.post(
        "/v1/stores",
        content=_chunks(50 * 1024 * 1024),
        headers={**account.headers(), "content-type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/payload-too-large")
    assert r.headers["x-request-id"] == r.json()["request_id"]


async def test_a_chunked_multipart_upload_over_the_limit_is_413(
    client: AsyncClient, account: Tenant, app: FastAPI
) -> None:
    limit = app.state.settings.max_body_bytes

    async def multipart() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="q.csv"\r\n\r\n'
        async for chunk in _chunks(limit + 1024):
            yield chunk
        yield b"\r\n--b--\r\n"

    r = await client.post(
        "/v1/quotes/imports",
        content=multipart(),
        headers={**account.headers(), "content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413, r.text


async def test_a_small_chunked_body_still_works(client: AsyncClient, account: Tenant) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"code": "CHUNK-1", "name": "Chunked", "region": "NA", "marketplace": "US", "country": "US",'
        yield b' "currency": "USD", "timezone": "America/New_York"}'

    r = await client.post(
        "/v1/stores", content=body(), headers={**account.headers(), "content-type": "application/json"}
    )
    assert r.status_code == 201, r.text
