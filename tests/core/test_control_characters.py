"""NUL and other control characters in text input are a 422 naming the field, never a 500 (issue 12).

PostgreSQL refuses NUL in text, so ``GET /v1/items?q=%00`` used to answer 500 — and so did the 12 other
free-text filters below. One middleware in ``core/`` now refuses them in the query, the path and JSON or
form bodies; the CSV reader applies the same rule to every cell.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.conftest import Tenant
from tests.quotes.helpers import Quotes
from tests.stores.factories import store_body


@pytest.fixture
def q(client: AsyncClient, account: Tenant) -> Quotes:
    return Quotes(client, account)


FREE_TEXT_FILTERS = [
    ("/v1/items", "asin"),
    ("/v1/items", "vendor_sku"),
    ("/v1/items", "q"),
    ("/v1/stores", "vendor_code"),
    ("/v1/stores", "code"),
    ("/v1/purchase-orders", "asin"),
    ("/v1/purchase-orders", "vendor_code"),
    ("/v1/shipments", "purchase_order_number"),
    ("/v1/shipments", "status"),
    ("/v1/shipments", "vendor_code"),
    ("/v1/audit-events", "resource_type"),
    ("/v1/audit-events", "resource_id"),
    ("/v1/audit-events", "action"),
]


def _assert_names(r: Any, loc: list[Any]) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["type"].endswith("/validation-error")
    assert body["errors"][0]["loc"] == loc
    assert body["errors"][0]["type"] == "control_character"
    assert body["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(("path", "param"), FREE_TEXT_FILTERS)
@pytest.mark.parametrize("value", ["a\x00b", "\x00\x7f", "x\x1by"])
async def test_free_text_filters_refuse_control_characters(
    client: AsyncClient, account: Tenant, path: str, param: str, value: str
) -> None:
    r = await client.get(path, params={param: value}, headers=account.headers())
    _assert_names(r, ["query", param])


async def test_every_string_query_parameter_refuses_nul(client: AsyncClient, account: Tenant, app: FastAPI) -> None:
    checked = 0
    for path, item in app.openapi()["paths"].items():
        operation = item.get("get")
        if not operation:
            continue
        concrete = path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                concrete = concrete.replace("{" + parameter["name"] + "}", str(uuid.uuid4()))
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            kinds = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
            if parameter["in"] != "query" or "string" not in kinds:
                continue
            r = await client.get(concrete, params={parameter["name"]: "\x00"}, headers=account.headers())
            _assert_names(r, ["query", parameter["name"]])
            checked += 1
    assert checked >= len(FREE_TEXT_FILTERS)


async def test_a_path_parameter_with_nul_is_named(client: AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/purchase-orders/PO%00123", headers=account.headers())
    _assert_names(r, ["path", "po_number"])


async def test_a_json_body_field_with_nul_is_named(client: AsyncClient, account: Tenant) -> None:
    r = await client.post("/v1/stores", json=store_body(name="New\u0000York"), headers=account.headers())
    _assert_names(r, ["body", "name"])


async def test_a_nested_json_field_with_a_control_character_is_named(client: AsyncClient, account: Tenant) -> None:
    body = store_body(vendor_codes=["ACME1", "AC\u0007ME2"])
    r = await client.post("/v1/stores", json=body, headers=account.headers())
    _assert_names(r, ["body", "vendor_codes", 1])


async def test_tab_and_newline_stay_allowed_in_free_text(q: Quotes) -> None:
    item = await q.item()
    r = await q.draft(item, region="NA", reason="first line\n\tsecond line")
    assert r.status_code == 201, r.text
    assert r.json()["reason"] == "first line\n\tsecond line"


async def test_a_form_field_with_nul_is_named(client: AsyncClient) -> None:
    r = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": "acc_\x00", "client_secret": "x"}
    )
    _assert_names(r, ["body", "client_id"])


async def test_a_csv_cell_with_nul_is_a_row_error(q: Quotes) -> None:
    await q.item(asin="B0CTRL0001", vendor_sku="CTRL-1")
    await q.store("CTRL-01")
    raw = "asin,store_code,currency,cost_price,effective_from,reason\nB0CTRL0001,CTRL-01,USD,1,2030-01-01,a\x00b\n"
    r = await q.client.post(
        "/v1/quotes/imports", content=raw.encode(), headers={**q.as_("purchasing"), "Content-Type": "text/csv"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["row_errors"][0]["row"] == 2
    assert r.json()["row_errors"][0]["column"] == "reason"
    assert "control character" in r.json()["row_errors"][0]["reason"]


async def test_the_size_limit_still_applies_to_inspected_bodies(client: AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/stores",
        content=b'{"name": "' + b"\\u0000" * 2_000_000 + b'"}',
        headers={**account.headers(), "content-type": "application/json"},
    )
    assert r.status_code == 413


async def test_http_basic_credentials_with_nul_are_refused_not_a_500(client: AsyncClient) -> None:
    raw = base64.b64encode(b"acc_\x00bad:secret").decode()
    r = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {raw}"}
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
