"""Drafting quotes: scope, currency and money rules, PATCH of drafts."""

from __future__ import annotations

from tests.quotes.helpers import Quotes, future, iso


async def test_store_quote_is_drafted_in_the_store_currency(q: Quotes):
    item, store = await q.item(), await q.store("NYC-01")
    quote = await q.drafted(item, store_id=store["id"], cost_price="10.5", list_price="19.99")
    assert (quote["status"], quote["scope_type"], quote["scope_key"]) == ("draft", "store", f"store:{store['id']}")
    assert (quote["cost_price"], quote["list_price"], quote["version"]) == ("10.5000", "19.9900", 1)


async def test_store_quote_in_another_currency_is_422(q: Quotes):
    item, store = await q.item(), await q.store("NYC-01")
    r = await q.draft(item, store_id=store["id"], currency="EUR")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "currency"]
    assert "USD" in r.json()["errors"][0]["msg"]


async def test_marketplace_quote_must_use_the_marketplace_currency(q: Quotes):
    item = await q.item()
    ok = await q.draft(item, region="EU", marketplace="DE", currency="EUR")
    bad = await q.draft(item, region="EU", marketplace="UK", currency="EUR")
    assert ok.status_code == 201
    assert bad.status_code == 422
    assert "GBP" in bad.json()["errors"][0]["msg"]


async def test_region_quote_must_use_a_currency_of_the_region(q: Quotes):
    item = await q.item()
    ok = await q.draft(item, region="NA", currency="CAD")
    bad = await q.draft(item, region="NA", currency="JPY")
    assert ok.json()["scope_key"] == "region:NA:CAD"
    assert bad.status_code == 422


async def test_store_and_region_together_are_422(q: Quotes):
    item, store = await q.item(), await q.store("NYC-01")
    r = await q.draft(item, store_id=store["id"], region="NA")
    assert r.status_code == 422
    assert "either store_id" in r.json()["errors"][0]["msg"]


async def test_marketplace_outside_its_region_is_422(q: Quotes):
    r = await q.draft(await q.item(), region="NA", marketplace="DE", currency="EUR")
    assert r.status_code == 422


async def test_a_number_is_not_accepted_as_a_price(q: Quotes):
    r = await q.draft(await q.item(), region="NA", cost_price=10.5)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "cost_price"]


async def test_thousands_separator_in_a_price_is_422_with_a_hint(q: Quotes):
    r = await q.draft(await q.item(), region="NA", cost_price="1,234.5")
    assert r.status_code == 422
    assert "thousands separator" in r.json()["errors"][0]["msg"]


async def test_more_than_four_decimals_is_422(q: Quotes):
    r = await q.draft(await q.item(), region="NA", cost_price="1.23456")
    assert r.status_code == 422


async def test_zero_price_is_422(q: Quotes):
    r = await q.draft(await q.item(), region="NA", cost_price="0")
    assert r.status_code == 422


async def test_effective_to_must_follow_effective_from(q: Quotes):
    start = future(3)
    r = await q.draft(await q.item(), region="NA", effective_from=iso(start), effective_to=iso(future(1)))
    assert r.status_code == 422


async def test_naive_effective_from_is_422(q: Quotes):
    r = await q.draft(await q.item(), region="NA", effective_from="2030-01-01T00:00:00")
    assert r.status_code == 422


async def test_another_accounts_store_is_422_naming_store_id(q: Quotes, client, other_account):
    other = Quotes(client, other_account)
    store = await other.store("THEIRS")
    r = await q.draft(await q.item(), store_id=store["id"])
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "store_id"]


async def test_discontinued_item_cannot_be_quoted(q: Quotes, client):
    item = await q.item(status="discontinued")
    r = await q.draft(item, region="NA")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "item_id"]


async def test_patch_changes_a_draft_and_bumps_its_version(q: Quotes, client):
    quote = await q.drafted(await q.item(), region="NA")
    r = await client.patch(
        f"/v1/quotes/{quote['id']}", json={"version": 1, "cost_price": "11.25"}, headers=q.as_("purchasing")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["cost_price"], r.json()["version"]) == ("11.2500", 2)


async def test_patch_with_a_stale_version_is_409(q: Quotes, client):
    quote = await q.drafted(await q.item(), region="NA")
    h = q.as_("purchasing")
    await client.patch(f"/v1/quotes/{quote['id']}", json={"version": 1, "reason": "a"}, headers=h)
    r = await client.patch(f"/v1/quotes/{quote['id']}", json={"version": 1, "reason": "b"}, headers=h)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/stale-version")
    assert r.json()["current_version"] == 2


async def test_patch_of_a_submitted_quote_is_409(q: Quotes, client):
    quote = await q.submitted(await q.item(), region="NA")
    r = await client.patch(
        f"/v1/quotes/{quote['id']}", json={"version": quote["version"], "reason": "x"}, headers=q.as_("purchasing")
    )
    assert r.status_code == 409
    assert r.json()["type"].endswith("/not-a-draft")


async def test_patch_requires_the_version(q: Quotes, client):
    quote = await q.drafted(await q.item(), region="NA")
    r = await client.patch(f"/v1/quotes/{quote['id']}", json={"reason": "x"}, headers=q.as_("purchasing"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "version"]


async def test_list_filters_by_status(q: Quotes, client):
    item = await q.item()
    draft = await q.drafted(item, region="NA")
    await q.submitted(item, region="NA", currency="CAD")
    r = await client.get("/v1/quotes", params={"status": "draft", "item_id": item["id"]}, headers=q.as_("viewer"))
    assert [x["id"] for x in r.json()["data"]] == [draft["id"]]


async def test_another_accounts_quote_is_404(q: Quotes, client, other_account):
    quote = await q.drafted(await q.item(), region="NA")
    for path in (f"/v1/quotes/{quote['id']}", f"/v1/quotes/{quote['id']}/events"):
        assert (await client.get(path, headers=other_account.headers())).status_code == 404
    r = await client.post(f"/v1/quotes/{quote['id']}/submit", json={"version": 1}, headers=other_account.headers())
    assert r.status_code == 404


async def test_viewer_cannot_draft(q: Quotes):
    r = await q.draft(await q.item(), region="NA", role="viewer")
    assert r.status_code == 403


async def test_an_item_with_quotes_cannot_be_deleted(q: Quotes, client):
    item = await q.item()
    await q.drafted(item, region="NA")
    r = await client.delete(f"/v1/items/{item['id']}", headers=q.as_("admin"))
    assert r.status_code == 409
    assert r.json()["type"].endswith("/item-in-use")


async def test_deleting_a_quoted_store_archives_it(q: Quotes, client):
    store = await q.store("NYC-01")
    await q.drafted(await q.item(), store_id=store["id"])
    r = await client.delete(f"/v1/stores/{store['id']}", headers=q.as_("admin"))
    assert r.status_code == 200
    assert (r.json()["deleted"], r.json()["store"]["status"]) == (False, "archived")


async def test_create_honours_idempotency_key(q: Quotes, client):
    item = await q.item()
    body = {
        "item_id": item["id"],
        "region": "NA",
        "currency": "USD",
        "cost_price": "3",
        "effective_from": iso(future()),
    }
    h = {**q.as_("purchasing"), "Idempotency-Key": "quote-1"}
    first = await client.post("/v1/quotes", json=body, headers=h)
    again = await client.post("/v1/quotes", json=body, headers=h)
    assert first.json()["id"] == again.json()["id"]
