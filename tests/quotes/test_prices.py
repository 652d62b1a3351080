"""Effective prices, takeover of older quotes, history, and the database's no-overlap guarantee."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.quotes.helpers import Quotes, future, iso

DAY = future(0)


def day(n: float) -> datetime:
    return future(n, base=DAY)


async def test_store_beats_marketplace_beats_region(q: Quotes):
    item, store = await q.item(), await q.store("NYC-01")
    await q.approved(item, region="NA", cost_price="10", effective_from=iso(day(1)))
    await q.approved(item, region="NA", marketplace="US", cost_price="11", effective_from=iso(day(2)))
    await q.approved(item, store_id=store["id"], cost_price="12", effective_from=iso(day(3)))
    sources = []
    for n in (1.5, 2.5, 3.5):
        r = (await q.effective(item, store, day(n))).json()
        sources.append((r["source"], r["cost_price"]))
    assert sources == [("region", "10.0000"), ("marketplace", "11.0000"), ("store", "12.0000")]


async def test_a_region_quote_prices_only_stores_in_its_currency(q: Quotes):
    item = await q.item()
    cad_store = await q.store("TOR-01", marketplace="CA", country="CA", currency="CAD", timezone="America/Toronto")
    await q.approved(item, region="NA", currency="USD", effective_from=iso(day(1)))
    r = await q.effective(item, cad_store, day(2))
    assert r.status_code == 404
    assert r.json()["type"].endswith("/no-effective-price")


async def test_no_price_before_effective_from(q: Quotes):
    item, store = await q.item(), await q.store("NYC-01")
    await q.approved(item, store_id=store["id"], effective_from=iso(day(2)))
    assert (await q.effective(item, store, day(1))).status_code == 404


async def test_lookup_by_asin(q: Quotes, client):
    item, store = await q.item(), await q.store("NYC-01")
    await q.approved(item, store_id=store["id"], effective_from=iso(day(1)))
    r = await client.get(
        "/v1/prices/effective",
        params={"asin": item["asin"], "store_id": store["id"], "at": iso(day(2))},
        headers=q.as_("viewer"),
    )
    assert r.json()["item_id"] == item["id"]


async def test_lookup_needs_item_id_or_asin(q: Quotes, client):
    store = await q.store("NYC-01")
    r = await client.get("/v1/prices/effective", params={"store_id": store["id"]}, headers=q.as_("viewer"))
    assert r.status_code == 422


async def test_another_accounts_store_is_404(q: Quotes, client, other_account):
    item = await q.item()
    theirs = await Quotes(client, other_account).store("THEIRS")
    r = await q.effective(item, theirs, day(1))
    assert r.status_code == 404


async def test_a_newer_quote_trims_the_running_one(q: Quotes, client):
    item, store = await q.item(), await q.store("NYC-01")
    old = await q.approved(item, store_id=store["id"], cost_price="10", effective_from=iso(day(1)))
    new = await q.approved(item, store_id=store["id"], cost_price="10.5", effective_from=iso(day(5)))
    old_now = (await client.get(f"/v1/quotes/{old['id']}", headers=q.as_("viewer"))).json()
    assert (old_now["status"], old_now["effective_to"]) == ("approved", new["effective_from"])
    assert (await q.effective(item, store, day(3))).json()["quote_id"] == old["id"]
    assert (await q.effective(item, store, day(6))).json()["quote_id"] == new["id"]


async def test_a_quote_entirely_inside_the_new_one_is_superseded(q: Quotes, client):
    item, store = await q.item(), await q.store("NYC-01")
    old = await q.approved(item, store_id=store["id"], effective_from=iso(day(5)), effective_to=iso(day(6)))
    new = await q.approved(item, store_id=store["id"], cost_price="10.1", effective_from=iso(day(2)))
    old_now = (await client.get(f"/v1/quotes/{old['id']}", headers=q.as_("viewer"))).json()
    assert (old_now["status"], old_now["superseded_by_id"]) == ("superseded", new["id"])


async def test_a_later_quote_is_deferred_past_a_temporary_one(q: Quotes, client):
    item, store = await q.item(), await q.store("NYC-01")
    later = await q.approved(item, store_id=store["id"], effective_from=iso(day(3)))
    promo = await q.approved(
        item, store_id=store["id"], cost_price="9.5", effective_from=iso(day(2)), effective_to=iso(day(4))
    )
    later_now = (await client.get(f"/v1/quotes/{later['id']}", headers=q.as_("viewer"))).json()
    assert later_now["effective_from"] == promo["effective_to"]
    assert (await q.effective(item, store, day(3))).json()["quote_id"] == promo["id"]
    assert (await q.effective(item, store, day(5))).json()["quote_id"] == later["id"]


async def test_takeover_is_on_the_older_quotes_timeline(q: Quotes, client):
    item, store = await q.item(), await q.store("NYC-01")
    old = await q.approved(item, store_id=store["id"], effective_from=iso(day(1)))
    new = await q.approved(item, store_id=store["id"], cost_price="10.2", effective_from=iso(day(5)))
    events = (await client.get(f"/v1/quotes/{old['id']}/events", headers=q.as_("viewer"))).json()["data"]
    assert events[-1]["action"] == "trimmed"
    assert events[-1]["details"] == {"by_quote_id": new["id"]}


async def test_history_lists_every_approved_period_per_scope(q: Quotes, client):
    item, store = await q.item(), await q.store("NYC-01")
    region = await q.approved(item, region="NA", cost_price="9", effective_from=iso(day(1)))
    first = await q.approved(item, store_id=store["id"], cost_price="10", effective_from=iso(day(1)))
    second = await q.approved(item, store_id=store["id"], cost_price="10.4", effective_from=iso(day(4)))
    await q.submitted(item, store_id=store["id"], cost_price="10.6", effective_from=iso(day(8)))
    r = await client.get(f"/v1/items/{item['id']}/price-history", headers=q.as_("viewer"))
    scopes = {s["scope_type"]: [p["quote_id"] for p in s["periods"]] for s in r.json()["scopes"]}
    assert scopes == {"store": [first["id"], second["id"]], "region": [region["id"]]}


async def test_history_of_another_accounts_item_is_404(q: Quotes, client, other_account):
    item = await q.item()
    r = await client.get(f"/v1/items/{item['id']}/price-history", headers=other_account.headers())
    assert r.status_code == 404


async def _insert_approved(session, account_id, item_id, start: str, end: str | None) -> None:
    await session.execute(
        text(
            "INSERT INTO quotes (id, account_id, item_id, scope_type, region, currency, cost_price, effective_from, "
            "effective_to, status) VALUES (:id, :a, :i, 'region', 'NA', 'USD', 1, :f, :t, 'approved')"
        ),
        {
            "id": uuid.uuid4(),
            "a": account_id,
            "i": uuid.UUID(item_id),
            "f": datetime.fromisoformat(start).replace(tzinfo=UTC),
            "t": datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None,
        },
    )


async def test_the_database_refuses_overlapping_approved_quotes(q: Quotes, session):
    item = await q.item()
    await _insert_approved(session, q.tenant.id, item["id"], "2030-01-01", "2030-02-01")
    with pytest.raises(IntegrityError, match="ex_quotes_approved_no_overlap"):
        async with session.begin_nested():
            await _insert_approved(session, q.tenant.id, item["id"], "2030-01-15", None)


async def test_adjacent_periods_do_not_overlap(q: Quotes, session):
    item = await q.item()
    await _insert_approved(session, q.tenant.id, item["id"], "2030-01-01", "2030-02-01")
    await _insert_approved(session, q.tenant.id, item["id"], "2030-02-01", None)


async def test_legacy_overlaps_are_reported(q: Quotes, client, session):
    item = await q.item()
    await session.execute(text("ALTER TABLE quotes DROP CONSTRAINT ex_quotes_approved_no_overlap"))
    await _insert_approved(session, q.tenant.id, item["id"], "2030-01-01", "2030-02-01")
    await _insert_approved(session, q.tenant.id, item["id"], "2030-01-15", None)
    await session.commit()  # a savepoint inside the test's transaction: the constraint comes back afterwards
    r = await client.get("/v1/quotes/conflicts", params={"item_id": item["id"]}, headers=q.as_("viewer"))
    overlaps = r.json()["overlaps"]
    assert len(overlaps) == 1
    assert overlaps[0]["scope_key"] == "region:NA:USD"
