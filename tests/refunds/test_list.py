"""Listing cases: filters, and keyset pages that stay correct for every sort (ties, nulls, deep pages)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.refunds.jobs import open_refund_cases
from tests.conftest import Tenant
from tests.refunds.factories import make_entry

AMOUNTS = ["-10.00", "-20.00", "-20.00", "-30.00", "-600.00", "-5.00", "-20.00", "-45.00", "-700.00", "-1.00"]
TYPES = ["shortage_claim", "chargeback", "coop", "provision", "price_claim"]


@pytest.fixture
async def cases(session: AsyncSession, account: Tenant, job_ctx: dict[str, Any]) -> None:
    for n, amount in enumerate(AMOUNTS):
        await make_entry(
            session, account.id, TYPES[n % len(TYPES)], amount, occurred_on=date(2027, 1, 1 + n), commit=False,
        )  # fmt: skip
    await session.commit()
    await open_refund_cases(job_ctx, str(account.id))


async def _all_pages(client: httpx.AsyncClient, tenant: Tenant, query: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"/v1/refund-cases?limit=3&{query}" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url, headers=tenant.headers())
        assert r.status_code == 200, r.text
        out += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if not r.json()["has_more"]:
            assert cursor is None
            return out


def _key(sort: str, case: dict[str, Any]) -> Any:
    if sort == "dispute_deadline":
        return (case["dispute_deadline"] is None, case["dispute_deadline"] or "", case["id"])
    value = case[sort] if sort == "created_at" else Decimal(case[sort])
    return (value, case["id"])


@pytest.mark.parametrize("sort", ["created_at", "priority", "amount", "dispute_deadline"])
async def test_pages_follow_each_sort_without_gaps_or_repeats(
    client: httpx.AsyncClient, account: Tenant, cases: None, sort: str
) -> None:
    listed = await _all_pages(client, account, f"sort={sort}")
    assert len(listed) == len({c["id"] for c in listed}) == len(AMOUNTS)
    expected = sorted(listed, key=lambda c: _key(sort, c), reverse=sort != "dispute_deadline")
    assert [c["id"] for c in listed] == [c["id"] for c in expected]
    if sort == "dispute_deadline":
        assert listed[-1]["dispute_deadline"] is None  # provisions have no deadline: last


async def test_filters(client: httpx.AsyncClient, account: Tenant, cases: None) -> None:
    async def ids(query: str) -> list[str]:
        return [c["amount"] for c in await _all_pages(client, account, query)]

    assert sorted(await ids("min_amount=500&sort=amount")) == ["600.0000", "700.0000"]
    assert await ids("status=needs_review&sort=amount") == ["700.0000", "600.0000"]
    both = await ids("status=needs_review&status=open&sort=amount")
    assert len(both) == len(AMOUNTS)
    assert await ids("status[]=needs_review&sort=amount") == ["700.0000", "600.0000"]
    assert await ids("type=provision&sort=amount") == ["700.0000", "30.0000"]
    before = await _all_pages(client, account, "deadline_before=2027-02-03")
    assert sorted(c["dispute_deadline"] for c in before) == ["2027-01-31", "2027-02-01"]
    assert await ids("needs_review=true&max_amount=650") == ["600.0000"]


async def test_a_cursor_of_another_sort_is_422(client: httpx.AsyncClient, account: Tenant, cases: None) -> None:
    first = (await client.get("/v1/refund-cases?limit=2&sort=amount", headers=account.headers())).json()
    r = await client.get(f"/v1/refund-cases?sort=priority&cursor={first['next_cursor']}", headers=account.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "cursor"]
    bad = await client.get("/v1/refund-cases?cursor=nonsense", headers=account.headers())
    assert bad.status_code == 422


async def test_another_accounts_cases_are_invisible(
    client: httpx.AsyncClient, account: Tenant, other_account: Tenant, cases: None
) -> None:
    assert (await client.get("/v1/refund-cases", headers=other_account.headers())).json()["data"] == []
    mine = (await client.get("/v1/refund-cases?limit=1", headers=account.headers())).json()["data"][0]
    for path in ("", "/events", "/dispute-packet"):
        r = await client.get(f"/v1/refund-cases/{mine['id']}{path}", headers=other_account.headers())
        assert r.status_code == 404, path
    r = await client.post(
        f"/v1/refund-cases/{mine['id']}/transitions",
        json={"to": "closed", "version": 1},
        headers=other_account.headers(),
    )
    assert r.status_code == 404
    bulk = await client.post(
        "/v1/refund-cases/bulk-transitions",
        json={"items": [{"id": mine["id"], "to": "closed"}]},
        headers=other_account.headers(),
    )
    assert bulk.json()["results"][0]["problem"]["status"] == 404


async def test_reading_needs_refunds_read_and_writing_refunds_write(
    client: httpx.AsyncClient, account: Tenant, cases: None
) -> None:
    purchasing = account.headers(account.keys["purchasing"])
    assert (await client.get("/v1/refund-cases", headers=purchasing)).status_code == 403
    viewer = account.headers(account.keys["viewer"])
    mine = (await client.get("/v1/refund-cases?limit=1", headers=viewer)).json()["data"][0]
    r = await client.post(
        f"/v1/refund-cases/{mine['id']}/transitions", json={"to": "closed", "version": 1}, headers=viewer
    )
    assert r.status_code == 403


async def test_schema_edge_cases_are_422_or_405_never_500(client: httpx.AsyncClient, account: Tenant) -> None:
    """Found by schemathesis: nulls against constrained optionals, numbers as dates, a verb on a fixed path."""
    h = account.headers()
    missing = "e3e70682-c209-1cac-a29f-6fbed82c07cd"
    body = {"amount": "1234.50", "dispute_reference": None, "note": "", "to": "open", "version": 0}
    r = await client.post(f"/v1/refund-cases/{missing}/transitions", json=body, headers={**h, "If-Match": "0"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][:2] == ["body", "version"]
    r = await client.post("/v1/refund-cases/bulk-transitions", json={"items": [{**body, "id": missing}]}, headers=h)
    assert r.status_code == 422
    item = {**body, "version": 1, "id": missing}
    r = await client.post("/v1/refund-cases/bulk-transitions", json={"items": [item]}, headers=h)
    assert r.status_code == 422  # dispute_reference: null is not in the schema
    settings = {"review_threshold": "1", "version": None, "windows": {}}
    r = await client.put("/v1/case-settings", json=settings, headers={**h, "If-Match": "0"})
    assert r.status_code == 422
    r = await client.put("/v1/case-settings", json={"review_threshold": "1"}, headers={**h, "If-Match": "0"})
    assert r.status_code == 200
    assert (await client.get("/v1/refund-cases?opened_before=0", headers=h)).status_code == 422
    assert (await client.patch("/v1/case-rules/apply", headers=h)).status_code == 405
    assert (await client.patch("/v1/refund-cases/predicted-shortages", json={}, headers=h)).status_code == 405
    rule = await client.post("/v1/case-rules", json={"name": "r", "vendor_code": None, "set_subtype": None}, headers=h)
    assert rule.status_code == 201, rule.text
