"""GET /v1/audit-events: filters and cursor pagination over what changed."""

from __future__ import annotations

import httpx

from tests.accounts.factories import create_api_key
from tests.conftest import Tenant
from tests.stores.factories import store_body


async def _store(client: httpx.AsyncClient, account: Tenant, code: str) -> str:
    r = await client.post("/v1/stores", json=store_body(code=code), headers=account.headers())
    assert r.status_code == 201, r.text
    store_id: str = r.json()["id"]
    return store_id


async def test_changes_are_listed_newest_first(client: httpx.AsyncClient, account: Tenant) -> None:
    store_id = await _store(client, account, "A-1")
    await client.patch(f"/v1/stores/{store_id}", json={"name": "Renamed"}, headers=account.headers())
    events = (await client.get("/v1/audit-events", headers=account.headers())).json()["data"]
    assert [e["action"] for e in events] == ["store.updated", "store.created"]
    assert events[0]["changes"]["name"] == ["New York DC", "Renamed"]
    assert events[0]["request_id"]


async def test_filters(client: httpx.AsyncClient, account: Tenant) -> None:
    first = await _store(client, account, "F-1")
    await _store(client, account, "F-2")
    key = await create_api_key(client, account, role="viewer")
    headers = account.headers()

    async def actions(query: str) -> list[str]:
        r = await client.get(f"/v1/audit-events?{query}", headers=headers)
        assert r.status_code == 200, r.text
        return [e["action"] for e in r.json()["data"]]

    assert await actions("resource_type=api_key") == ["api_key.created"]
    assert await actions(f"resource_type=store&resource_id={first}") == ["store.created"]
    assert await actions("action=store.created") == ["store.created", "store.created"]
    admin_events = await actions("limit=200")
    assert len(admin_events) == 3
    key_id = key["id"]
    assert await actions(f"actor_id={key_id}") == []


async def test_time_window(client: httpx.AsyncClient, account: Tenant) -> None:
    await _store(client, account, "T-1")
    events = (await client.get("/v1/audit-events", headers=account.headers())).json()["data"]
    at = events[0]["created_at"]
    since = (await client.get("/v1/audit-events", params={"since": at}, headers=account.headers())).json()["data"]
    until = (await client.get("/v1/audit-events", params={"until": at}, headers=account.headers())).json()["data"]
    assert (len(since), len(until)) == (1, 0)


async def test_naive_time_is_422(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/audit-events", params={"since": "2026-01-01T00:00:00"}, headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["query", "since"]


async def test_cursor_pagination(client: httpx.AsyncClient, account: Tenant) -> None:
    for i in range(5):
        await _store(client, account, f"P-{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/audit-events", params=params, headers=account.headers())).json()
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 5


async def test_needs_audit_read(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/audit-events", headers=account.headers(account.keys["purchasing"]))
    assert r.status_code == 403


async def test_another_account_sees_none_of_ours(
    client: httpx.AsyncClient, account: Tenant, other_account: Tenant
) -> None:
    await _store(client, account, "X-1")
    theirs = (await client.get("/v1/audit-events", headers=other_account.headers())).json()["data"]
    assert theirs == []
