from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from acorn_api.catalog.schemas import gtin_check_digit_ok
from tests.catalog.factories import EAN, UPC, item_body
from tests.conftest import Tenant


async def create(client: httpx.AsyncClient, tenant: Tenant, **overrides: object) -> httpx.Response:
    return await client.post("/v1/items", json=item_body(**overrides), headers=tenant.headers())


async def test_create_then_get_returns_the_item(client, account: Tenant):
    r = await create(client, account, asin="B012345678", vendor_sku="BOTTLE-1", ean=EAN, upc=UPC)
    assert r.status_code == 201, r.text
    r = await client.get(f"/v1/items/{r.json()['id']}", headers=account.headers())
    assert r.json()["asin"] == "B012345678"
    assert (r.json()["ean"], r.json()["upc"], r.json()["status"]) == (EAN, UPC, "active")
    assert r.headers["ETag"] == '"1"'


async def test_asin_is_upper_cased(client, account: Tenant):
    r = await create(client, account, asin=" b0abcdefgh ")
    assert r.json()["asin"] == "B0ABCDEFGH"


async def test_duplicate_asin_is_409_naming_asin(client, account: Tenant):
    await create(client, account, asin="B000000001")
    r = await create(client, account, asin="B000000001")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/item-asin-taken")
    assert r.json()["errors"][0]["loc"] == ["body", "asin"]


async def test_duplicate_vendor_sku_is_409_naming_vendor_sku(client, account: Tenant):
    await create(client, account, vendor_sku="DUP")
    r = await create(client, account, vendor_sku="DUP")
    assert r.status_code == 409
    assert r.json()["errors"][0]["loc"] == ["body", "vendor_sku"]


async def test_same_asin_in_another_account_is_fine(client, account: Tenant, other_account: Tenant):
    await create(client, account, asin="B000000002")
    r = await create(client, other_account, asin="B000000002")
    assert r.status_code == 201


async def test_bad_ean_check_digit_is_422(client, account: Tenant):
    r = await create(client, account, ean="4006381333932")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "ean"]
    assert "check digit" in r.json()["errors"][0]["msg"]


async def test_bad_upc_check_digit_is_422(client, account: Tenant):
    r = await create(client, account, upc="036000291453")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "upc"]


async def test_bad_asin_is_422(client, account: Tenant):
    r = await create(client, account, asin="X123")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "asin"]


async def test_cases_need_a_case_size(client, account: Tenant):
    r = await create(client, account, unit_of_measure="Cases")
    assert r.status_code == 422
    assert "case_size" in r.json()["errors"][0]["msg"]


async def test_cases_with_case_size_are_kept(client, account: Tenant):
    r = await create(client, account, unit_of_measure="Cases", case_size=12)
    assert (r.json()["unit_of_measure"], r.json()["case_size"]) == ("Cases", 12)


async def test_filters_by_asin_vendor_sku_and_text(client, account: Tenant):
    await create(client, account, asin="B0FILTER01", vendor_sku="F-1", title="Blue ceramic mug", brand="Potter")
    await create(client, account, asin="B0FILTER02", vendor_sku="F-2", title="Red enamel kettle", brand="Smith")
    h = account.headers()
    by_asin = (await client.get("/v1/items", params={"asin": "b0filter01"}, headers=h)).json()["data"]
    by_sku = (await client.get("/v1/items", params={"vendor_sku": "F-2"}, headers=h)).json()["data"]
    by_text = (await client.get("/v1/items", params={"q": "CERAM"}, headers=h)).json()["data"]
    by_brand = (await client.get("/v1/items", params={"q": "smit"}, headers=h)).json()["data"]
    assert [i["vendor_sku"] for i in by_asin] == ["F-1"]
    assert [i["vendor_sku"] for i in by_sku] == ["F-2"]
    assert [i["vendor_sku"] for i in by_text] == ["F-1"]
    assert [i["vendor_sku"] for i in by_brand] == ["F-2"]


async def test_text_search_treats_wildcards_literally(client, account: Tenant):
    await create(client, account, title="100% cotton towel")
    await create(client, account, title="1000 thread sheet")
    r = await client.get("/v1/items", params={"q": "100%"}, headers=account.headers())
    assert [i["title"] for i in r.json()["data"]] == ["100% cotton towel"]


async def test_list_pages_with_a_cursor(client, account: Tenant):
    for _ in range(3):
        await create(client, account)
    first = (await client.get("/v1/items", params={"limit": 2}, headers=account.headers())).json()
    second = (
        await client.get("/v1/items", params={"limit": 2, "cursor": first["next_cursor"]}, headers=account.headers())
    ).json()
    ids = [i["id"] for i in first["data"] + second["data"]]
    assert first["has_more"] and not second["has_more"]
    assert len(ids) == len(set(ids)) == 3


async def test_patch_with_stale_version_is_409(client, account: Tenant):
    item = (await create(client, account)).json()
    h = account.headers()
    await client.patch(f"/v1/items/{item['id']}", json={"title": "New", "version": 1}, headers=h)
    r = await client.patch(f"/v1/items/{item['id']}", json={"title": "Newer", "version": 1}, headers=h)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/stale-version")


async def test_patch_changes_fields_and_bumps_version(client, account: Tenant):
    item = (await create(client, account)).json()
    r = await client.patch(
        f"/v1/items/{item['id']}", json={"status": "discontinued", "version": 1}, headers=account.headers()
    )
    assert (r.json()["status"], r.json()["version"]) == ("discontinued", 2)


async def test_patch_to_a_taken_vendor_sku_is_409(client, account: Tenant):
    await create(client, account, vendor_sku="TAKEN")
    item = (await create(client, account)).json()
    r = await client.patch(f"/v1/items/{item['id']}", json={"vendor_sku": "TAKEN"}, headers=account.headers())
    assert r.status_code == 409
    assert r.json()["errors"][0]["loc"] == ["body", "vendor_sku"]


async def test_delete_removes_an_unquoted_item(client, account: Tenant):
    item = (await create(client, account)).json()
    r = await client.delete(f"/v1/items/{item['id']}", headers=account.headers())
    assert r.status_code == 204
    assert (await client.get(f"/v1/items/{item['id']}", headers=account.headers())).status_code == 404


async def test_another_accounts_item_is_404(client, account: Tenant, other_account: Tenant):
    item = (await create(client, account)).json()
    r = await client.get(f"/v1/items/{item['id']}", headers=other_account.headers())
    assert r.status_code == 404
    r = await client.patch(f"/v1/items/{item['id']}", json={"title": "x"}, headers=other_account.headers())
    assert r.status_code == 404


async def test_viewer_cannot_create_items(client, account: Tenant):
    r = await client.post("/v1/items", json=item_body(), headers=account.headers(account.keys["viewer"]))
    assert r.status_code == 403
    assert r.json()["required_scopes"] == ["items:write"]


async def test_item_changes_are_audited(client, account: Tenant, session):
    from sqlalchemy import select

    from acorn_api.accounts.audit import AuditEvent

    item = (await create(client, account)).json()
    actions = (await session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == item["id"]))).all()
    assert actions == ["item.created"]


def _with_check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


@given(st.text(alphabet="0123456789", min_size=11, max_size=12))
def test_gtin_accepts_exactly_the_right_check_digit(body: str):
    good = _with_check_digit(body)
    assert gtin_check_digit_ok(good)
    for wrong in set("0123456789") - {good[-1]}:
        assert not gtin_check_digit_ok(good[:-1] + wrong)
