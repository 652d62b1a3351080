"""The approval flow over HTTP: every transition, four-eyes, the policy, stale versions, the timeline."""

from __future__ import annotations

from sqlalchemy import select

from acorn_api.accounts.audit import AuditEvent
from tests.quotes.helpers import Quotes


async def test_submit_moves_a_draft_to_pending(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    assert (quote["status"], quote["version"]) == ("pending_approval", 2)
    assert quote["submitted_by"] is not None
    assert quote["conflicts"] == []


async def test_finance_approves_a_pending_quote(q: Quotes):
    quote = await q.approved(await q.item(), region="NA")
    assert quote["status"] == "approved"
    assert quote["decided_by"] != quote["submitted_by"]


async def test_reject_needs_a_reason(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    r = await q.act(quote, "reject", role="finance")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "reason"]


async def test_reject_records_the_reason(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    r = await q.act(quote, "reject", role="finance", reason="too expensive")
    assert (r.json()["status"], r.json()["decision_reason"]) == ("rejected", "too expensive")


async def test_withdraw_a_draft(q: Quotes):
    quote = await q.drafted(await q.item(), region="NA")
    r = await q.act(quote, "withdraw", role="purchasing")
    assert r.json()["status"] == "withdrawn"


async def test_withdraw_a_pending_quote(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    r = await q.act(quote, "withdraw", role="purchasing")
    assert r.json()["status"] == "withdrawn"


async def test_approving_a_draft_is_an_invalid_transition(q: Quotes):
    quote = await q.drafted(await q.item(), region="NA")
    r = await q.act(quote, "approve", role="finance")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/invalid-transition")
    assert r.json()["status_now"] == "draft"


async def test_withdrawing_an_approved_quote_is_an_invalid_transition(q: Quotes):
    quote = await q.approved(await q.item(), region="NA")
    r = await q.act(quote, "withdraw", role="purchasing")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/invalid-transition")


async def test_a_rejected_quote_cannot_be_submitted_again(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    rejected = (await q.act(quote, "reject", role="finance", reason="no")).json()
    r = await q.act(rejected, "submit", role="purchasing")
    assert r.status_code == 409


async def test_a_stale_version_is_409(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    r = await q.act({**quote, "version": 1}, "approve", role="finance")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/stale-version")


async def test_the_submitter_cannot_approve(q: Quotes):
    item = await q.item()
    quote = await q.drafted(item, region="NA", role="admin")
    submitted = (await q.act(quote, "submit", role="admin")).json()
    r = await q.act(submitted, "approve", role="admin")
    assert r.status_code == 403
    assert r.json()["type"].endswith("/four-eyes")


async def test_purchasing_lacks_the_approve_scope(q: Quotes):
    quote = await q.submitted(await q.item(), region="NA")
    r = await q.act(quote, "approve", role="purchasing")
    assert r.status_code == 403
    assert r.json()["required_scopes"] == ["quotes:approve"]


async def test_a_quote_whose_start_has_passed_cannot_be_submitted(q: Quotes):
    quote = await q.drafted(await q.item(), region="NA", effective_from="2020-01-01T00:00:00Z")
    r = await q.act(quote, "submit", role="purchasing")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/effective-from-passed")


async def test_every_step_is_on_the_timeline(q: Quotes, client):
    quote = await q.submitted(await q.item(), region="NA")
    await q.act(quote, "reject", role="finance", reason="no")
    events = (await client.get(f"/v1/quotes/{quote['id']}/events", headers=q.as_("viewer"))).json()["data"]
    steps = [(e["action"], e["from_status"], e["to_status"], e["version"]) for e in events]
    assert steps == [
        ("created", None, "draft", 1),
        ("submitted", "draft", "pending_approval", 2),
        ("rejected", "pending_approval", "rejected", 3),
    ]
    assert events[-1]["reason"] == "no"
    assert events[-1]["actor_role"] == "finance"


async def test_every_step_is_in_the_audit_log(q: Quotes, session):
    quote = await q.approved(await q.item(), region="NA")
    rows = await session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == quote["id"]))
    assert sorted(rows.all()) == ["quote.approved", "quote.created", "quote.submitted"]


# --- the policy -------------------------------------------------------------------------------------------


async def _baseline(q: Quotes, item: dict, price: str = "10.00") -> dict:
    return await q.approved(item, region="NA", cost_price=price)


async def test_policy_defaults(q: Quotes, client):
    r = await client.get("/v1/quote-policy", headers=q.as_("viewer"))
    assert r.json() == {
        "finance_threshold_pct": "10",
        "hard_cap_pct": "50",
        "conflict_tolerance_pct": "5",
        "version": 0,
        "is_default": True,
    }


async def test_only_an_admin_sets_the_policy(q: Quotes, client):
    body = {"finance_threshold_pct": "20", "hard_cap_pct": "60", "conflict_tolerance_pct": "2.5"}
    denied = await client.put("/v1/quote-policy", json=body, headers=q.as_("finance"))
    ok = await client.put("/v1/quote-policy", json=body, headers=q.as_("admin"))
    assert denied.status_code == 403
    assert ok.json()["finance_threshold_pct"] == "20.00"
    assert ok.json()["version"] == 1


async def test_policy_cap_below_threshold_is_422(q: Quotes, client):
    body = {"finance_threshold_pct": "20", "hard_cap_pct": "10"}
    r = await client.put("/v1/quote-policy", json=body, headers=q.as_("admin"))
    assert r.status_code == 422


async def test_policy_put_with_stale_version_is_409(q: Quotes, client):
    await client.put("/v1/quote-policy", json={}, headers=q.as_("admin"))
    r = await client.put("/v1/quote-policy", json={"version": 0}, headers=q.as_("admin"))
    assert r.status_code == 409


async def test_a_big_change_needs_a_finance_approver(q: Quotes, scoped_key):
    item = await q.item()
    await _baseline(q, item)
    quote = await q.submitted(item, region="NA", cost_price="11.50", effective_from="2099-01-01T00:00:00Z")
    approver = await scoped_key("quotes:approve", "quotes:read")
    r = await q.client.post(f"/v1/quotes/{quote['id']}/approve", json={"version": quote["version"]}, headers=approver)
    assert quote["requires_finance_approval"] is True
    assert quote["change_pct"] == "15.0000"
    assert r.status_code == 403
    assert r.json()["type"].endswith("/finance-approval-required")


async def test_finance_may_approve_a_big_change(q: Quotes):
    item = await q.item()
    await _baseline(q, item)
    quote = await q.submitted(item, region="NA", cost_price="11.50", effective_from="2099-01-01T00:00:00Z")
    r = await q.act(quote, "approve", role="finance")
    assert r.status_code == 200, r.text


async def test_a_small_change_needs_no_finance(q: Quotes, scoped_key):
    item = await q.item()
    await _baseline(q, item)
    quote = await q.submitted(item, region="NA", cost_price="10.50", effective_from="2099-01-01T00:00:00Z")
    approver = await scoped_key("quotes:approve")
    r = await q.client.post(f"/v1/quotes/{quote['id']}/approve", json={"version": quote["version"]}, headers=approver)
    assert r.status_code == 200, r.text


async def test_the_threshold_is_per_account(q: Quotes, client, scoped_key):
    await client.put("/v1/quote-policy", json={"finance_threshold_pct": "20"}, headers=q.as_("admin"))
    item = await q.item()
    await _baseline(q, item)
    quote = await q.submitted(item, region="NA", cost_price="11.50", effective_from="2099-01-01T00:00:00Z")
    approver = await scoped_key("quotes:approve")
    r = await client.post(f"/v1/quotes/{quote['id']}/approve", json={"version": quote["version"]}, headers=approver)
    assert r.status_code == 200, r.text


async def test_a_change_above_the_hard_cap_is_refused(q: Quotes):
    item = await q.item()
    await _baseline(q, item)
    quote = await q.drafted(item, region="NA", cost_price="16.00", effective_from="2099-01-01T00:00:00Z")
    r = await q.act(quote, "submit", role="purchasing")
    assert r.status_code == 422
    assert r.json()["type"].endswith("/price-change-over-cap")
    assert r.json()["change_pct"] == "60.0000"


async def test_an_override_reason_lifts_the_hard_cap(q: Quotes):
    item = await q.item()
    await _baseline(q, item)
    quote = await q.submitted(
        item, region="NA", cost_price="16.00", effective_from="2099-01-01T00:00:00Z", override_reason="new supplier"
    )
    r = await q.act(quote, "approve", role="finance")
    assert r.status_code == 200, r.text
