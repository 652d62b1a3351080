"""The dispute workflow: every legal transition, every illegal one, required fields, versions, the timeline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.refunds.models import CaseStatus, RefundCase
from acorn_api.refunds.policy import TRANSITIONS
from acorn_api.webhooks.models import Event
from tests.conftest import Tenant

# For each status: the moves (with their bodies) that lead there from a new case.
PATH_TO: dict[str, list[dict[str, Any]]] = {
    "open": [],
    "needs_review": [{"to": "needs_review"}],
    "ready_to_dispute": [{"to": "ready_to_dispute"}],
    "disputed": [{"to": "ready_to_dispute"}, {"to": "disputed", "dispute_reference": "VC-1"}],
    "denied": [{"to": "ready_to_dispute"}, {"to": "disputed", "dispute_reference": "VC-1"}, {"to": "denied"}],
    "redisputed": [
        {"to": "ready_to_dispute"},
        {"to": "disputed", "dispute_reference": "VC-1"},
        {"to": "denied"},
        {"to": "redisputed", "dispute_reference": "VC-2"},
    ],
    "partially_recovered": [
        {"to": "ready_to_dispute"},
        {"to": "disputed", "dispute_reference": "VC-1"},
        {"to": "partially_recovered", "amount": "20.00"},
    ],
    "recovered": [{"to": "ready_to_dispute"}, {"to": "disputed", "dispute_reference": "VC-1"}, {"to": "recovered"}],
    "written_off": [{"to": "written_off", "note": "not worth it"}],
    "closed": [{"to": "closed"}],
}
BODY_FOR: dict[str, dict[str, Any]] = {
    "disputed": {"dispute_reference": "VC-9"},
    "redisputed": {"dispute_reference": "VC-9"},
    "partially_recovered": {"amount": "10.00"},
    "written_off": {"note": "too small"},
}


async def _move(client: httpx.AsyncClient, tenant: Tenant, case_id: Any, body: dict[str, Any]) -> httpx.Response:
    current = (await client.get(f"/v1/refund-cases/{case_id}", headers=tenant.headers())).json()
    return await client.post(
        f"/v1/refund-cases/{case_id}/transitions",
        json={"version": current["version"], **body},
        headers=tenant.headers(),
    )


async def _case_in(client: httpx.AsyncClient, tenant: Tenant, make_case: Any, status: str) -> Any:
    case = await make_case(tenant.id, "shortage_claim", "-120.00")
    for body in PATH_TO[status]:
        r = await _move(client, tenant, case.id, body)
        assert r.status_code == 200, (status, body, r.text)
    return case.id


LEGAL = [(s.value, t.value) for s in CaseStatus for t in sorted(TRANSITIONS[s])]
ILLEGAL = [(s.value, t.value) for s in CaseStatus for t in CaseStatus if t not in TRANSITIONS[s]]


@pytest.mark.parametrize(("start", "to"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
async def test_every_legal_transition(
    client: httpx.AsyncClient, account: Tenant, make_case: Any, start: str, to: str
) -> None:
    case_id = await _case_in(client, account, make_case, start)
    r = await _move(client, account, case_id, {"to": to, **BODY_FOR.get(to, {})})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == to


@pytest.mark.parametrize(("start", "to"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
async def test_every_illegal_transition_is_409_naming_the_allowed(
    client: httpx.AsyncClient, account: Tenant, make_case: Any, start: str, to: str
) -> None:
    case_id = await _case_in(client, account, make_case, start)
    r = await _move(client, account, case_id, {"to": to, **BODY_FOR.get(to, {})})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/illegal-transition")
    allowed = set(problem["allowed"])
    assert allowed <= {t.value for t in TRANSITIONS[CaseStatus(start)]}
    for name in allowed:
        assert name in problem["detail"]


async def test_chargebacks_are_disputed_at_most_twice(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id, "chargeback", "-45.00", description="Carton labels")
    for body in [
        {"to": "ready_to_dispute"},
        {"to": "disputed", "dispute_reference": "VC-1"},
        {"to": "denied"},
        {"to": "redisputed", "dispute_reference": "VC-2"},
        {"to": "denied"},
    ]:
        assert (await _move(client, account, case.id, body)).status_code == 200
    r = await _move(client, account, case.id, {"to": "redisputed", "dispute_reference": "VC-3"})
    assert r.status_code == 409
    assert sorted(r.json()["allowed"]) == ["closed", "written_off"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("ready_to_dispute", {"to": "disputed"}, "dispute_reference"),
        ("open", {"to": "written_off"}, "note"),
        ("disputed", {"to": "partially_recovered"}, "amount"),
        ("disputed", {"to": "partially_recovered", "amount": "120.00"}, "amount"),
        ("disputed", {"to": "recovered", "amount": "500.00"}, "amount"),
        ("open", {"to": "needs_review", "amount": "5.00"}, "amount"),
    ],
)
async def test_missing_or_wrong_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, account: Tenant, make_case: Any, path: str, body: dict[str, Any], field: str
) -> None:
    case_id = await _case_in(client, account, make_case, path)
    r = await _move(client, account, case_id, body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", field]


async def test_a_finance_user_works_a_case_to_recovered_with_a_full_timeline(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id, "shortage_claim", "-800.00")
    assert case.status == "needs_review"
    finance = account.headers(account.keys["finance"])
    steps = [
        {"to": "ready_to_dispute", "note": "checked the POD"},
        {"to": "disputed", "dispute_reference": "VC-123"},
        {"to": "partially_recovered", "amount": "300.00"},
        {"to": "redisputed", "dispute_reference": "VC-124"},
        {"to": "recovered"},
        {"to": "closed"},
    ]
    version = case.version
    for step in steps:
        r = await client.post(
            f"/v1/refund-cases/{case.id}/transitions", json={"version": version, **step}, headers=finance
        )
        assert r.status_code == 200, r.text
        version = r.json()["version"]
    final = r.json()
    assert final["recovered_amount"] == "800.0000" and final["open_amount"] == "0.0000"
    assert final["dispute_count"] == 2 and final["priority"] == "0.0000"

    timeline = (await client.get(f"/v1/refund-cases/{case.id}/events", headers=finance)).json()["data"]
    assert [e["kind"] for e in timeline] == ["created"] + ["status_changed"] * 6
    assert timeline[0]["to_status"] == "needs_review"
    assert [e["to_status"] for e in timeline[1:]] == [s["to"] for s in steps]
    assert timeline[1]["note"] == "checked the POD" and timeline[2]["dispute_reference"] == "VC-123"
    assert timeline[3]["amount"] == "300.0000"
    assert all(e["actor"].startswith("api_key:") for e in timeline[1:])
    changed = await session.scalars(
        select(Event.data).where(Event.account_id == account.id, Event.type == "refund_case.status_changed")
    )
    assert [d["status"] for d in changed] == [s["to"] for s in steps]


async def test_a_stale_version_is_409_and_a_stale_if_match_412(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id)
    url = f"/v1/refund-cases/{case.id}/transitions"
    ok = await client.post(url, json={"to": "needs_review", "version": case.version}, headers=account.headers())
    assert ok.status_code == 200
    stale = await client.post(url, json={"to": "ready_to_dispute", "version": case.version}, headers=account.headers())
    assert stale.status_code == 409 and stale.json()["current_version"] == case.version + 1
    r = await client.post(
        url, json={"to": "ready_to_dispute"}, headers={**account.headers(), "If-Match": f'"{case.version}"'}
    )
    assert r.status_code == 412
    missing = await client.post(url, json={"to": "ready_to_dispute"}, headers=account.headers())
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["body", "version"]


async def test_patch_assigns_and_tags_with_a_version(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id)
    url = f"/v1/refund-cases/{case.id}"
    r = await client.patch(
        url, json={"assignee": "ana@example.com", "tags": ["q4"], "version": 1}, headers=account.headers()
    )
    assert r.status_code == 200, r.text
    assert (r.json()["assignee"], r.json()["tags"], r.json()["version"]) == ("ana@example.com", ["q4"], 2)
    assert (await client.patch(url, json={"tags": [], "version": 1}, headers=account.headers())).status_code == 409
    listed = await client.get("/v1/refund-cases?assignee=ana@example.com&tag=q4", headers=account.headers())
    assert [c["id"] for c in listed.json()["data"]] == [str(case.id)]


async def test_bulk_transitions_report_per_case_results(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    a = await make_case(account.id)
    b = await make_case(account.id)
    c = await make_case(account.id)
    r = await client.post(
        "/v1/refund-cases/bulk-transitions",
        json={
            "items": [
                {"id": str(a.id), "to": "ready_to_dispute", "version": 1},
                {"id": str(b.id), "to": "recovered"},  # illegal from open
                {"id": str(c.id), "to": "written_off", "note": "dup", "version": 7},  # stale
            ]
        },
        headers=account.headers(),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["succeeded"], body["failed"]) == (1, 2)
    results = {x["id"]: x for x in body["results"]}
    assert results[str(a.id)]["ok"] and results[str(a.id)]["status"] == "ready_to_dispute"
    assert results[str(b.id)]["problem"]["type"].endswith("/illegal-transition")
    assert results[str(c.id)]["problem"]["status"] == 409
    statuses = dict(
        (
            await session.execute(select(RefundCase.id, RefundCase.status).where(RefundCase.account_id == account.id))
        ).all()
    )
    assert statuses == {a.id: "ready_to_dispute", b.id: "open", c.id: "open"}


async def test_bulk_transitions_refuse_more_than_500(client: httpx.AsyncClient, account: Tenant) -> None:
    import uuid

    items = [{"id": str(uuid.uuid4()), "to": "closed"} for _ in range(501)]
    r = await client.post("/v1/refund-cases/bulk-transitions", json={"items": items}, headers=account.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][:2] == ["body", "items"]


async def test_written_off_records_amount_and_reason(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id, "coop", "-80.00")
    r = await _move(client, account, case.id, {"to": "written_off", "note": "agreed with Amazon"})
    assert r.json()["written_off_amount"] == "80.0000"
    events = (await client.get(f"/v1/refund-cases/{case.id}/events", headers=account.headers())).json()["data"]
    assert events[-1]["note"] == "agreed with Amazon" and Decimal(events[-1]["amount"]) == Decimal(80)
