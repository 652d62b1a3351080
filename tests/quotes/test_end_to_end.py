"""The issue's scenario, start to finish: purchasing drafts and submits, finance approves, the price changes
at effective_from, the history shows it, conflicts are reported, and every invalid step gets a clear problem."""

from __future__ import annotations

from datetime import timedelta

from tests.quotes.helpers import Quotes, future, iso


async def test_a_price_change_from_draft_to_effective_price(q: Quotes, client, scoped_key):
    purchasing, finance, viewer = q.as_("purchasing"), q.as_("finance"), q.as_("viewer")
    item = await q.item(asin="B0E2E00001", vendor_sku="E2E-1")
    nyc, lax = await q.store("NYC-01"), await q.store("LAX-01")
    today = future(0)
    change_at = future(5, base=today)

    # The marketplace price both US stores have today.
    us_price = await q.approved(item, region="NA", marketplace="US", cost_price="10.00", effective_from=iso(future(1)))

    # Purchasing drafts a 12 % increase for one store and submits it: a conflict warning comes back.
    r = await client.post(
        "/v1/quotes",
        json={
            "item_id": item["id"],
            "store_id": nyc["id"],
            "currency": "USD",
            "cost_price": "11.20",
            "effective_from": iso(change_at),
            "reason": "new freight contract",
        },
        headers=purchasing,
    )
    assert r.status_code == 201, r.text
    draft = r.json()
    r = await client.post(f"/v1/quotes/{draft['id']}/submit", json={"version": draft["version"]}, headers=purchasing)
    assert r.status_code == 200, r.text
    pending = r.json()
    assert pending["status"] == "pending_approval"
    assert pending["change_pct"] == "12.0000"
    assert pending["requires_finance_approval"] is True
    assert [c["marketplace"] for c in pending["conflicts"]] == ["US"]

    # Invalid steps, each with a clear problem.
    approve = f"/v1/quotes/{pending['id']}/approve"
    r = await client.post(approve, json={"version": pending["version"]}, headers=purchasing)
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (403, "insufficient-scope")
    not_finance = await scoped_key("quotes:approve", "quotes:read")
    r = await client.post(
        approve, json={"version": pending["version"], "acknowledge_conflicts": True}, headers=not_finance
    )
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (403, "finance-approval-required")
    r = await client.post(approve, json={"version": pending["version"]}, headers=finance)
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (409, "unacknowledged-conflicts")
    r = await client.post(approve, json={"version": 1, "acknowledge_conflicts": True}, headers=finance)
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (409, "stale-version")
    r = await client.post(f"/v1/quotes/{pending['id']}/withdraw", json={"version": 1}, headers=purchasing)
    assert r.status_code == 409

    # Finance approves, acknowledging the conflict.
    r = await client.post(approve, json={"version": pending["version"], "acknowledge_conflicts": True}, headers=finance)
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["status"] == "approved"

    # The effective price changes at effective_from, and says where it comes from.
    before = await q.effective(item, nyc, change_at - timedelta(seconds=1))
    after = await q.effective(item, nyc, change_at)
    assert (before.json()["cost_price"], before.json()["source"], before.json()["quote_id"]) == (
        "10.0000",
        "marketplace",
        us_price["id"],
    )
    assert (after.json()["cost_price"], after.json()["source"], after.json()["quote_id"]) == (
        "11.2000",
        "store",
        approved["id"],
    )
    assert (await q.effective(item, lax, change_at)).json()["cost_price"] == "10.0000"

    # The history shows both prices for the store.
    r = await client.get(f"/v1/items/{item['id']}/price-history", params={"store_id": nyc["id"]}, headers=viewer)
    periods = {
        s["scope_type"]: [(p["cost_price"], p["effective_from"]) for p in s["periods"]] for s in r.json()["scopes"]
    }
    assert periods == {
        "store": [("11.2000", iso(change_at))],
        "marketplace": [("10.0000", us_price["effective_from"])],
    }

    # Conflicts are reported once the change is in force, not before.
    on_day = (change_at + timedelta(days=1)).date().isoformat()
    day_before = (change_at - timedelta(days=1)).date().isoformat()
    r = await client.get("/v1/quotes/conflicts", params={"on": on_day}, headers=viewer)
    assert [(c["item_id"], c["spread_pct"]) for c in r.json()["price_conflicts"]] == [(item["id"], "12.00")]
    r = await client.get("/v1/quotes/conflicts", params={"on": day_before}, headers=viewer)
    assert r.json()["price_conflicts"] == []

    # The timeline tells the story.
    r = await client.get(f"/v1/quotes/{approved['id']}/events", headers=viewer)
    assert [(e["action"], e["actor_role"]) for e in r.json()["data"]] == [
        ("created", "purchasing"),
        ("submitted", "purchasing"),
        ("approved", "finance"),
    ]
