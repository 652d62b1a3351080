"""Concurrent approvals against the real database, with real commits."""

from __future__ import annotations

import asyncio
import itertools

from tests.quotes.helpers import Quotes, future, iso


async def test_of_many_concurrent_approvals_exactly_one_wins(committing_client, make_committed_account):
    q = Quotes(committing_client, await make_committed_account("race"))
    quote = await q.submitted(await q.item(), region="NA")
    results = await asyncio.gather(*[q.act(quote, "approve", role="finance") for _ in range(12)])
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [409] * 11
    assert {r.json()["type"].rsplit("/", 1)[1] for r in results if r.status_code == 409} == {"stale-version"}
    events = (await committing_client.get(f"/v1/quotes/{quote['id']}/events", headers=q.as_("viewer"))).json()
    assert [e["action"] for e in events["data"]].count("approved") == 1


async def test_concurrent_approvals_in_one_scope_never_overlap(committing_client, make_committed_account):
    q = Quotes(committing_client, await make_committed_account("scope race"))
    item, store = await q.item(), await q.store("NYC-01")
    pending = [
        await q.submitted(item, store_id=store["id"], cost_price=f"10.{n}", effective_from=iso(future(n + 1)))
        for n in range(4)
    ]
    results = await asyncio.gather(*[q.act(p, "approve", role="finance", acknowledge_conflicts=True) for p in pending])
    assert [r.status_code for r in results] == [200] * 4
    listed = await committing_client.get(
        "/v1/quotes", params={"item_id": item["id"], "status": "approved"}, headers=q.as_("viewer")
    )
    periods = sorted((x["effective_from"], x["effective_to"] or "9999") for x in listed.json()["data"])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(periods))
