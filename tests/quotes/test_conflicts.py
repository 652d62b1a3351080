"""Channel conflicts: warned on submit, acknowledged on approval, listed per day."""

from __future__ import annotations

from tests.quotes.helpers import Quotes, future, iso

START = iso(future(1))


async def _two_us_stores_at_ten(q: Quotes) -> tuple[dict, dict, dict]:
    item = await q.item()
    a, b = await q.store("NYC-01"), await q.store("LAX-01")
    await q.approved(item, region="NA", marketplace="US", cost_price="10", effective_from=START)
    return item, a, b


async def test_submit_warns_about_the_conflicts_it_would_create(q: Quotes):
    item, a, _b = await _two_us_stores_at_ten(q)
    quote = await q.submitted(item, store_id=a["id"], cost_price="10.80", effective_from=iso(future(2)))
    assert len(quote["conflicts"]) == 1
    conflict = quote["conflicts"][0]
    assert (conflict["marketplace"], conflict["min_price"], conflict["max_price"]) == ("US", "10.0000", "10.8000")
    assert conflict["spread_pct"] == "8.00"
    assert {s["store_code"]: s["source"] for s in conflict["stores"]} == {
        "NYC-01": "this_quote",
        "LAX-01": "marketplace",
    }


async def test_a_change_within_the_tolerance_is_no_conflict(q: Quotes):
    item, a, _ = await _two_us_stores_at_ten(q)
    quote = await q.submitted(item, store_id=a["id"], cost_price="10.40", effective_from=iso(future(2)))
    assert quote["conflicts"] == []


async def test_approval_of_a_conflicting_quote_needs_acknowledgement(q: Quotes):
    item, a, _ = await _two_us_stores_at_ten(q)
    quote = await q.submitted(item, store_id=a["id"], cost_price="10.80", effective_from=iso(future(2)))
    r = await q.act(quote, "approve", role="finance")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/unacknowledged-conflicts")
    assert r.json()["conflicts"][0]["marketplace"] == "US"


async def test_acknowledged_conflicts_are_approved_and_listed(q: Quotes):
    item, a, _ = await _two_us_stores_at_ten(q)
    quote = await q.submitted(item, store_id=a["id"], cost_price="10.80", effective_from=iso(future(2)))
    r = await q.act(quote, "approve", role="finance", acknowledge_conflicts=True)
    assert r.status_code == 200
    assert r.json()["status"] == "approved"
    assert len(r.json()["conflicts"]) == 1


async def test_the_conflict_report_lists_the_spread_on_a_day(q: Quotes, client):
    item, a, _ = await _two_us_stores_at_ten(q)
    await q.approved(item, store_id=a["id"], cost_price="12", effective_from=iso(future(2)))
    day = future(3).date().isoformat()
    report = (await client.get("/v1/quotes/conflicts", params={"on": day}, headers=q.as_("viewer"))).json()
    assert [(c["item_id"], c["min_price"], c["max_price"]) for c in report["price_conflicts"]] == [
        (item["id"], "10.0000", "12.0000")
    ]
    assert report["tolerance_pct"] == "5"


async def test_the_report_is_empty_before_the_change_takes_effect(q: Quotes, client):
    item, a, _ = await _two_us_stores_at_ten(q)
    await q.approved(item, store_id=a["id"], cost_price="12", effective_from=iso(future(5)))
    day = future(3).date().isoformat()
    report = (await client.get("/v1/quotes/conflicts", params={"on": day}, headers=q.as_("viewer"))).json()
    assert report["price_conflicts"] == []


async def test_the_tolerance_comes_from_the_policy(q: Quotes, client):
    await client.put("/v1/quote-policy", json={"conflict_tolerance_pct": "25"}, headers=q.as_("admin"))
    item, a, _ = await _two_us_stores_at_ten(q)
    await q.approved(item, store_id=a["id"], cost_price="12", effective_from=iso(future(2)))
    day = future(3).date().isoformat()
    report = (await client.get("/v1/quotes/conflicts", params={"on": day}, headers=q.as_("viewer"))).json()
    assert report["price_conflicts"] == []


async def test_stores_of_other_marketplaces_are_not_compared(q: Quotes):
    item = await q.item()
    us = await q.store("NYC-01")
    await q.store("TOR-01", marketplace="CA", country="CA", currency="CAD", timezone="America/Toronto")
    await q.approved(item, region="NA", marketplace="CA", currency="CAD", cost_price="14", effective_from=START)
    quote = await q.submitted(item, store_id=us["id"], cost_price="10", effective_from=iso(future(2)))
    assert quote["conflicts"] == []
