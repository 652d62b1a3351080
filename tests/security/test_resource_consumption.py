"""OWASP API4 (unrestricted resource consumption): what one request may cost.

* every list route refuses a ``limit`` above its documented maximum (422 naming ``query.limit``);
* every write route refuses a body over the configured limit with 413 before the handler runs (checked with a
  1 KiB limit, so the walk stays cheap), and an upload that *declares* a huge size is refused without being
  read;
* deeply nested JSON is a 4xx problem, never a 500 or a stack overflow;
* rate limits (429 with ``Retry-After``) are in tests/accounts/test_ratelimit.py, streamed bodies without
  ``Content-Length`` in tests/core/test_body_limit.py, gzip and XLSX bombs in tests/amazon and tests/ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.accounts.conftest import AppClientFactory
from tests.conftest import Tenant
from tests.test_isolation import PROTECTED, WRITES, Op, _resolve, _url

LISTS = [
    op
    for op in PROTECTED
    if op.method == "GET"
    and any(p.get("name") == "limit" and p.get("in") == "query" for p in (op.operation or {}).get("parameters", []))
]


def _limit_maximum(op: Op) -> int:
    parameter = next(p for p in (op.operation or {}).get("parameters", []) if p.get("name") == "limit")
    schema = _resolve(parameter["schema"])
    options = [schema, *[_resolve(s) for s in schema.get("anyOf", [])]]
    return int(next(s["maximum"] for s in options if "maximum" in s))


def test_every_list_documents_a_maximum_limit() -> None:
    assert len(LISTS) >= 20
    assert all(_limit_maximum(op) <= 1000 for op in LISTS)


@pytest.mark.parametrize("op", LISTS, ids=lambda op: op.id)
async def test_a_limit_above_the_maximum_is_422(client: httpx.AsyncClient, account: Tenant, op: Op) -> None:
    r = await client.get(_url(op, {}), params={"limit": _limit_maximum(op) + 1}, headers=account.headers())
    assert r.status_code == 422, f"{op.id}: {r.status_code} {r.text}"
    assert ["query", "limit"] in [e["loc"] for e in r.json()["errors"]]
    huge = await client.get(_url(op, {}), params={"limit": 10**30}, headers=account.headers())
    assert huge.status_code == 422, f"{op.id}: {huge.status_code} {huge.text}"


async def test_every_write_route_refuses_a_body_over_the_limit_with_413(
    client_with: AppClientFactory, account: Tenant
) -> None:
    body = b'{"name": "' + b"x" * 4096 + b'"}'
    async with client_with(max_body_bytes=1024, max_import_bytes=1024) as c:
        for op in WRITES:
            limit_note = "" if op.path != "/v1/imports" else " (its own limit: the import limit + 64 KiB)"
            payload = body if op.path != "/v1/imports" else b"x" * (1024 + 65 * 1024)
            r = await c.request(
                op.method,
                _url(op, {}),
                content=payload,
                headers={**account.headers(), "Content-Type": "application/json"},
            )
            assert r.status_code == 413, f"{op.id}{limit_note}: {r.status_code} {r.text}"
            assert r.headers["content-type"] == "application/problem+json"


async def test_a_huge_declared_upload_is_refused_before_it_is_read(app: FastAPI, account: Tenant) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):  # would be 640 MB
            sent += 1
            yield b"x" * 65536

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post(
            "/v1/imports",
            content=body(),
            headers={
                **account.headers(),
                "Content-Type": "multipart/form-data; boundary=x",
                "Content-Length": str(10_000 * 65536),
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
    assert r.status_code == 413, r.text
    assert sent <= 2, f"{sent} chunks were read before the refusal"


@pytest.mark.parametrize("depth", [200, 5_000, 100_000])
async def test_deeply_nested_json_is_a_4xx_problem(client: httpx.AsyncClient, account: Tenant, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for path, document in (
        ("/v1/stores", nested),  # the body itself
        ("/v1/stores", '{"code": "DEEP", "metadata": {"a": ' + nested + "}}"),  # inside a free-form field
        ("/v1/import-mappings", '{"name": "m", "report_type": "invoices", "columns": ' + nested + "}"),
    ):
        r = await client.post(path, content=document, headers={**account.headers(), "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, f"{path} at depth {depth}: {r.status_code} {r.text[:300]}"
        assert r.headers["content-type"] == "application/problem+json"
