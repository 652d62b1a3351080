"""The stores endpoints: the first real resource and the reference for every convention."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Tenant
from tests.stores.factories import store_body


async def create_store(client: AsyncClient, tenant: Tenant, **overrides: object) -> dict:
    r = await client.post("/v1/stores", json=store_body(**overrides), headers=tenant.headers())
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_returns_the_store_with_its_fields(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    assert store["code"] == "NYC-01"
    assert store["status"] == "active"
    assert store["vendor_codes"] == ["ACME1"]
    assert store["metadata"] == {"erp_id": "4711"}
    assert store["version"] == 1
    assert store["created_at"].endswith("Z")
    uuid.UUID(store["id"])


async def test_get_returns_what_was_created_with_an_etag(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    r = await client.get(f"/v1/stores/{store['id']}", headers=account.headers())
    assert r.json() == store
    assert r.headers["etag"] == '"1"'


async def test_duplicate_code_is_a_conflict_naming_the_field(client: AsyncClient, account: Tenant) -> None:
    await create_store(client, account)
    r = await client.post("/v1/stores", json=store_body(name="Other"), headers=account.headers())
    assert r.status_code == 409
    problem = r.json()
    assert problem["type"].endswith("/store-code-taken")
    assert problem["errors"][0]["loc"] == ["body", "code"]


async def test_same_code_in_two_accounts_is_fine(client: AsyncClient, account: Tenant, other_account: Tenant) -> None:
    await create_store(client, account)
    await create_store(client, other_account)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "XYZ"),
        ("currency", "usd"),
        ("timezone", "Mars/Olympus"),
        ("country", "ZZ"),
        ("region", "SA"),
        ("marketplace", "XX"),
        ("code", ""),
        ("code", "has space"),
        ("vendor_codes", ["A", "A"]),
        ("metadata", {"blob": "x" * 5000}),
        ("name", None),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    client: AsyncClient, account: Tenant, field: str, value: object
) -> None:
    r = await client.post("/v1/stores", json=store_body(**{field: value}), headers=account.headers())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert any(e["loc"][:2] == ["body", field] for e in r.json()["errors"]), r.json()


async def test_marketplace_outside_its_region_is_422_on_marketplace(client: AsyncClient, account: Tenant) -> None:
    r = await client.post("/v1/stores", json=store_body(region="EU", marketplace="US"), headers=account.headers())
    assert r.status_code == 422
    error = r.json()["errors"][0]
    assert error["loc"] == ["body", "marketplace"]
    assert "region NA" in error["msg"]


async def test_unknown_fields_are_rejected(client: AsyncClient, account: Tenant) -> None:
    r = await client.post("/v1/stores", json=store_body(colour="red"), headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "colour"]


async def test_malformed_json_is_a_problem_not_a_500(client: AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/stores", content=b"{not json", headers={**account.headers(), "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["type"] == "json_invalid"


async def test_patch_changes_only_the_fields_sent(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    r = await client.patch(f"/v1/stores/{store['id']}", json={"name": "Renamed"}, headers=account.headers())
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == "Renamed"
    assert updated["code"] == store["code"]
    assert updated["version"] == 2


async def test_patch_with_a_stale_version_is_409_and_changes_nothing(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    await client.patch(f"/v1/stores/{store['id']}", json={"name": "First"}, headers=account.headers())
    r = await client.patch(
        f"/v1/stores/{store['id']}", json={"name": "Second", "version": 1}, headers=account.headers()
    )
    assert r.status_code == 409
    assert r.json()["type"].endswith("/stale-version")
    current = (await client.get(f"/v1/stores/{store['id']}", headers=account.headers())).json()
    assert current["name"] == "First"


async def test_patch_with_a_stale_if_match_is_412(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    await client.patch(f"/v1/stores/{store['id']}", json={"name": "First"}, headers=account.headers())
    r = await client.patch(
        f"/v1/stores/{store['id']}", json={"name": "Second"}, headers={**account.headers(), "If-Match": '"1"'}
    )
    assert r.status_code == 412


async def test_patch_cannot_null_a_field(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    r = await client.patch(f"/v1/stores/{store['id']}", json={"name": None}, headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "name"]


async def test_patch_region_must_still_contain_the_marketplace(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    r = await client.patch(f"/v1/stores/{store['id']}", json={"region": "EU"}, headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "region"]


async def test_patch_to_a_taken_code_is_409(client: AsyncClient, account: Tenant) -> None:
    await create_store(client, account, code="A")
    second = await create_store(client, account, code="B")
    r = await client.patch(f"/v1/stores/{second['id']}", json={"code": "A"}, headers=account.headers())
    assert r.status_code == 409


async def test_delete_removes_an_unreferenced_store(client: AsyncClient, account: Tenant) -> None:
    store = await create_store(client, account)
    r = await client.delete(f"/v1/stores/{store['id']}", headers=account.headers())
    assert r.status_code == 200
    assert r.json() == {"id": store["id"], "deleted": True, "store": None}
    assert (await client.get(f"/v1/stores/{store['id']}", headers=account.headers())).status_code == 404


async def test_delete_archives_a_store_that_other_data_refers_to(
    client: AsyncClient, account: Tenant, session: AsyncSession
) -> None:
    store = await create_store(client, account)
    # Any table with a foreign key to the store counts; this one is rolled back with the test.
    await session.execute(
        text(
            "CREATE TABLE test_store_refs (account_id uuid, store_id uuid, FOREIGN KEY (account_id, store_id) "
            "REFERENCES stores (account_id, id))"
        )
    )
    await session.execute(text("INSERT INTO test_store_refs VALUES (:a, :s)"), {"a": str(account.id), "s": store["id"]})
    await session.flush()
    r = await client.delete(f"/v1/stores/{store['id']}", headers=account.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deleted"] is False
    assert body["store"]["status"] == "archived"


async def test_another_accounts_store_is_404_everywhere(
    client: AsyncClient, account: Tenant, other_account: Tenant
) -> None:
    theirs = await create_store(client, other_account)
    path = f"/v1/stores/{theirs['id']}"
    assert (await client.get(path, headers=account.headers())).status_code == 404
    assert (await client.patch(path, json={"name": "x"}, headers=account.headers())).status_code == 404
    assert (await client.delete(path, headers=account.headers())).status_code == 404
    still = await client.get(path, headers=other_account.headers())
    assert still.json() == theirs


async def test_list_is_scoped_to_the_account(client: AsyncClient, account: Tenant, other_account: Tenant) -> None:
    mine = await create_store(client, account)
    await create_store(client, other_account, code="THEIRS")
    r = await client.get("/v1/stores", headers=account.headers())
    assert [s["id"] for s in r.json()["data"]] == [mine["id"]]


async def test_list_pages_through_every_store_once_newest_first(client: AsyncClient, account: Tenant) -> None:
    created = [await create_store(client, account, code=f"S{i:02d}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/stores", params=params, headers=account.headers())).json()
        seen += [s["code"] for s in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == [s["code"] for s in reversed(created)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"region": "EU"}, ["BER"]),
        ({"vendor_code": "V2"}, ["BER"]),
        ({"marketplace": "US"}, ["NYC"]),
        ({"code": "NYC"}, ["NYC"]),
    ],
)
async def test_list_filters(client: AsyncClient, account: Tenant, params: dict, expected: list[str]) -> None:
    await create_store(client, account, code="NYC", vendor_codes=["V1"])
    await create_store(
        client,
        account,
        code="BER",
        region="EU",
        marketplace="DE",
        country="DE",
        currency="EUR",
        timezone="Europe/Berlin",
        vendor_codes=["V2"],
    )
    r = await client.get("/v1/stores", params=params, headers=account.headers())
    assert [s["code"] for s in r.json()["data"]] == expected


async def test_a_store_prices_in_its_own_currency_not_necessarily_its_marketplaces(
    client: AsyncClient, account: Tenant
) -> None:
    """Kept by design (security-suite finding 3): DESIGN.md makes the store the unit of pricing and ties no
    currency to a marketplace, so a US store may price in EUR; its quotes then follow the store, not the
    marketplace."""
    from tests.catalog.factories import item_body

    store = await create_store(client, account, currency="EUR")
    assert (store["marketplace"], store["currency"]) == ("US", "EUR")
    item = await client.post("/v1/items", json=item_body(), headers=account.headers())
    assert item.status_code == 201, item.text
    quote = {
        "item_id": item.json()["id"],
        "store_id": store["id"],
        "cost_price": "10.00",
        "effective_from": "2031-01-01T00:00:00Z",
    }
    usd = await client.post("/v1/quotes", json={**quote, "currency": "USD"}, headers=account.headers())
    assert usd.status_code == 422, usd.text
    assert [e["loc"] for e in usd.json()["errors"]] == [["body", "currency"]]
    eur = await client.post("/v1/quotes", json={**quote, "currency": "EUR"}, headers=account.headers())
    assert eur.status_code == 201, eur.text


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"cursor": "garbage!"}, {"region": "XX"}])
async def test_bad_list_parameters_are_422(client: AsyncClient, account: Tenant, params: dict) -> None:
    r = await client.get("/v1/stores", params=params, headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][0] == "query"


async def test_malformed_id_is_422_on_the_path(client: AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/stores/not-a-uuid", headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["path", "store_id"]


async def test_changes_are_audited(client: AsyncClient, account: Tenant, session: AsyncSession) -> None:
    store = await create_store(client, account)
    await client.patch(f"/v1/stores/{store['id']}", json={"name": "Renamed"}, headers=account.headers())
    rows = (
        await session.execute(
            text("SELECT action, changes FROM audit_events WHERE resource_id = :id ORDER BY created_at, action"),
            {"id": store["id"]},
        )
    ).all()
    actions = {row.action: row.changes for row in rows}
    assert actions["store.updated"] == {"name": ["New York DC", "Renamed"]}
    assert actions["store.created"]["code"] == [None, "NYC-01"]
