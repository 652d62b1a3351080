"""422 ``errors[].loc`` names the client's field, never pydantic's internals (found by the bad input corpus).

For ``X | None`` fields with validators pydantic reports the union branch it tried inside ``loc``
(``function-after[_check_asin(), function-after[functools.partial(<function max_length_validator at 0x7f…>``),
leaking function names and a memory address, and adds a second error for the ``None`` branch.
"""

from __future__ import annotations

import re

import httpx

from tests.conftest import Tenant

INTERNAL = re.compile(r"[\[\]()<>]|^constrained-|^none$|^uuid$|0x[0-9a-f]+")


def _locs(r: httpx.Response) -> list[list[str | int]]:
    assert r.status_code == 422, r.text
    return [e["loc"] for e in r.json()["errors"]]


async def test_optional_fields_with_validators_name_only_the_field(client: httpx.AsyncClient, account: Tenant) -> None:
    h = account.headers()
    item = await client.post("/v1/items", json={"asin": "B07XJ8C8F5", "vendor_sku": "S-1", "title": "t"}, headers=h)
    assert item.status_code == 201, item.text
    cases = [
        ("PATCH", f"/v1/items/{item.json()['id']}", {"asin": 1234567890}, ["body", "asin"]),
        ("POST", "/v1/api-keys", {"name": "k", "scopes": ["stores:destroy"]}, ["body", "scopes"]),
        (
            "POST",
            "/v1/events/00000000-0000-4000-8000-000000000000/redeliver",
            {"endpoint_id": "x"},
            ["body", "endpoint_id"],
        ),
    ]
    for method, path, body, field in cases:
        r = await client.request(method, path, json=body, headers=h)
        locs = _locs(r)
        assert locs == [field], f"{method} {path}: {locs}"
        assert not any(isinstance(p, str) and INTERNAL.search(p) for loc in locs for p in loc)
        assert "function-after" not in r.text and "0x" not in r.json()["detail"]


async def test_nested_list_errors_keep_their_index(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["quote.approved", "quote.exploded"]},
        headers=account.headers(),
    )
    locs = _locs(r)
    assert ["body", "event_types", 1] in locs
    assert not any(isinstance(p, str) and INTERNAL.search(p) for loc in locs for p in loc), locs
