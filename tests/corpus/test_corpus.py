"""The bad input corpus: every JSON and upload endpoint, each case with its exact problem answer.

Cases are files, so adding one needs no code:

* ``json/<operation>.<case>.json`` — ``method``, ``path``, and the request as ``body`` (JSON), ``raw`` (text
  sent as is) or ``raw_base64`` (bytes that are not UTF-8), optionally ``content_type``;
* ``uploads.json`` — upload cases naming a file in ``uploads/`` (``{asin}`` in a file is replaced by a real
  item's ASIN), the form fields, or ``as_body`` to send the file as the whole body with that content type.

``expect`` holds the answer: ``status``, the problem ``type`` (after ``…/problems/``) and, when the problem
names one, the ``field`` that must be among ``errors[].loc``. Placeholders such as ``{store_id}`` in a path or
body are objects created for the case's account first. Every case also checks that the account's rows in every
tenant table are byte-for-byte the same afterwards: a refused request writes nothing.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.catalog.factories import item_body
from tests.conftest import Tenant
from tests.test_isolation import _create, _fingerprint

HERE = Path(__file__).parent
JSON_CASES = {path.stem: json.loads(path.read_text()) for path in sorted((HERE / "json").glob("*.json"))}
UPLOAD_CASES: dict[str, dict[str, Any]] = json.loads((HERE / "uploads.json").read_text())
PLACEHOLDER = re.compile(r"\{([a-z_]+_id)\}")
PROBLEM_PREFIX = "https://acorn.dev/problems/"


def test_the_corpus_covers_every_json_and_upload_endpoint() -> None:
    from tests.security.test_property_level import JSON_BODIES

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}|/[0-9a-f-]{36}", "/{id}", path).replace("//", "/")

    covered = {(c["method"], shape(c["path"])) for c in JSON_CASES.values()}
    missing = [op.id for op in JSON_BODIES if (op.method, shape(op.path)) not in covered]
    assert not missing, f"no corpus case for {missing}"
    assert {c["path"] for c in UPLOAD_CASES.values()} == {"/v1/imports", "/v1/quotes/imports"}
    assert all(c["expect"] for c in [*JSON_CASES.values(), *UPLOAD_CASES.values()])


async def _placeholders(client: httpx.AsyncClient, tenant: Tenant, text: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name in PLACEHOLDER.findall(text):
        await _create(client, tenant, name, ids)
        assert name in ids, f"cannot create a {name} for the case"
    return ids


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: ids[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _check(r: httpx.Response, expect: dict[str, Any], case: str) -> None:
    assert r.status_code == expect["status"], f"{case}: {r.status_code} {r.text[:1000]}"
    assert r.headers["content-type"] == "application/problem+json", f"{case}: {r.headers['content-type']}"
    problem = r.json()
    assert problem["type"] == PROBLEM_PREFIX + expect["type"], f"{case}: {problem}"
    assert problem["status"] == expect["status"]
    if "field" in expect:
        locs = [e["loc"] for e in problem.get("errors") or []]
        assert expect["field"] in locs, f"{case}: {expect['field']} not in {locs}"


@pytest.mark.parametrize("name", sorted(JSON_CASES))
async def test_json_case(client: httpx.AsyncClient, session: AsyncSession, account: Tenant, name: str) -> None:
    case = JSON_CASES[name]
    ids = await _placeholders(client, account, json.dumps(case))
    if "body" in case:
        content = json.dumps(_fill(case["body"], ids)).encode()
    elif "raw_base64" in case:
        content = base64.b64decode(case["raw_base64"])
    else:
        content = _fill(case["raw"], ids).encode()
    before = await _fingerprint(session, account.id)
    r = await client.request(
        case["method"],
        _fill(case["path"], ids),
        content=content,
        headers={
            **account.headers(),
            "Content-Type": case.get("content_type", "application/json"),
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    _check(r, case["expect"], name)
    assert await _fingerprint(session, account.id) == before, f"{name} changed the account's data"


@pytest.mark.parametrize("name", sorted(UPLOAD_CASES))
async def test_upload_case(client: httpx.AsyncClient, session: AsyncSession, account: Tenant, name: str) -> None:
    case = UPLOAD_CASES[name]
    item = await client.post("/v1/items", json=item_body(), headers=account.headers())
    assert item.status_code == 201, item.text
    content = b""
    if case["file"]:
        content = (HERE / "uploads" / case["file"]).read_bytes().replace(b"{asin}", item.json()["asin"].encode())
    headers = {**account.headers(), "Idempotency-Key": uuid.uuid4().hex}
    before = await _fingerprint(session, account.id)
    if "as_body" in case:
        r = await client.post(case["path"], content=content, headers={**headers, "Content-Type": case["as_body"]})
    elif "json" in case:
        r = await client.post(case["path"], json=case["json"], headers=headers)
    else:
        files = {"file": (case["file"], content, "application/octet-stream")} if case["file"] else None
        r = await client.post(case["path"], data=case.get("form", {}), files=files, headers=headers)
    _check(r, case["expect"], name)
    assert await _fingerprint(session, account.id) == before, f"{name} changed the account's data"
