"""Classification rules: ordering, patterns, the review threshold, re-classification on request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.refunds.rules import like_pattern
from tests.conftest import Tenant


async def _rule(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/case-rules", json={"name": "rule", **body}, headers=tenant.headers())
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_built_in_defaults_classify_a_new_account(account: Tenant, make_case: Any) -> None:
    assert (await make_case(account.id, "return", "-20.00")).type == "customer_return"
    assert (await make_case(account.id, "damage_allowance", "-20.00")).type == "warehouse_damage"
    cb = await make_case(account.id, "chargeback", "-20.00", description="PO on-time accuracy")
    assert (cb.type, cb.subtype) == ("compliance_chargeback", "po_on_time_accuracy")
    odd = await make_case(account.id, "chargeback", "-20.00", description="Something new")
    assert odd.subtype == "Something new"


@pytest.mark.parametrize(
    ("amount", "status"), [("-499.99", "open"), ("-500.00", "needs_review"), ("-5000", "needs_review")]
)
async def test_the_review_threshold(account: Tenant, make_case: Any, amount: str, status: str) -> None:
    assert (await make_case(account.id, "price_claim", amount)).status == status


async def test_the_review_threshold_is_configurable(client: httpx.AsyncClient, account: Tenant, make_case: Any) -> None:
    r = await client.put("/v1/case-settings", json={"review_threshold": "100", "version": 0}, headers=account.headers())
    assert r.status_code == 200, r.text
    assert (await make_case(account.id, "price_claim", "-150.00")).status == "needs_review"


async def test_rules_apply_in_position_order_and_fall_through_per_attribute(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    second = await _rule(client, account, position=20, description_pattern="label", set_subtype="labels-late",
                         set_assignee="bob", set_tags=["labels"])  # fmt: skip
    first = await _rule(client, account, position=10, entry_types=["chargeback"], set_assignee="ana")
    case = await make_case(account.id, "chargeback", "-30.00", description="Carton LABEL missing")
    assert case.assignee == "ana"  # position 10 sets the assignee first
    assert case.subtype == "labels-late"  # 10 sets no subtype, 20 does
    assert case.tags == ["labels"]
    assert str(case.rule_id) == first["id"]
    assert second["position"] == 20


async def test_rules_match_vendor_code_store_and_amount_range(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    await _rule(client, account, vendor_code="ACME1", min_amount="100", max_amount="200", set_type="other",
                needs_review=True)  # fmt: skip
    inside = await make_case(account.id, "coop", "-150.00", vendor_code="ACME1")
    outside = await make_case(account.id, "coop", "-250.00", vendor_code="ACME1")
    other_vendor = await make_case(account.id, "coop", "-150.00", vendor_code="ZETA2")
    assert (inside.type, inside.status) == ("other", "needs_review")
    assert (outside.type, other_vendor.type) == ("coop", "coop")


async def test_a_rule_can_send_small_cases_to_review_and_big_ones_past_it(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    await _rule(client, account, entry_types=["provision"], needs_review=False)
    await _rule(client, account, entry_types=["return"], needs_review=True)
    assert (await make_case(account.id, "provision", "-9000")).status == "open"
    assert (await make_case(account.id, "return", "-1")).status == "needs_review"


@pytest.mark.parametrize(
    ("pattern", "kind", "text", "hit"),
    [
        ("ASN", "contains", "late asn accuracy", True),
        ("100%", "contains", "rebate 100% co-op", True),
        ("100%", "contains", "rebate 1000 co-op", False),
        ("a_b", "contains", "axb", False),
        ("PO *", "glob", "po 4711 late", True),
        ("PO *", "glob", "the PO 4711", False),
        ("PO-????", "glob", "PO-4711", True),
        ("PO-????", "glob", "PO-47", False),
        ("(a+)+$", "contains", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", False),
    ],
)
async def test_patterns_are_substrings_or_anchored_globs_never_regexes(
    session: AsyncSession, pattern: str, kind: str, text: str, hit: bool
) -> None:
    from sqlalchemy import literal, select

    matched = await session.scalar(select(literal(text).ilike(like_pattern(pattern, kind), escape="\\")))
    assert matched is hit


async def test_apply_reclassifies_open_cases_but_not_disputed_ones(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    open_case = await make_case(account.id, "chargeback", "-40.00", description="prep fee")
    disputed = await make_case(account.id, "chargeback", "-40.00", description="prep fee")
    for body in ({"to": "ready_to_dispute", "version": 1}, {"to": "disputed", "version": 2, "dispute_reference": "X"}):
        assert (
            await client.post(f"/v1/refund-cases/{disputed.id}/transitions", json=body, headers=account.headers())
        ).status_code == 200
    await _rule(client, account, description_pattern="prep", set_subtype="prep-2027", set_assignee="ops",
                needs_review=True)  # fmt: skip

    r = await client.post("/v1/case-rules/apply", headers=account.headers())
    assert r.status_code == 200, r.text
    assert r.json() == {"reclassified": 1, "status_changes": 1}
    after = (await client.get(f"/v1/refund-cases/{open_case.id}", headers=account.headers())).json()
    assert (after["subtype"], after["assignee"], after["status"]) == ("prep-2027", "ops", "needs_review")
    untouched = (await client.get(f"/v1/refund-cases/{disputed.id}", headers=account.headers())).json()
    assert untouched["subtype"] == "prep"
    timeline = (await client.get(f"/v1/refund-cases/{open_case.id}/events", headers=account.headers())).json()
    assert timeline["data"][-1]["kind"] == "reclassified"
    again = await client.post("/v1/case-rules/apply", headers=account.headers())
    assert again.json() == {"reclassified": 0, "status_changes": 0}


async def test_rule_crud_with_versions(client: httpx.AsyncClient, account: Tenant) -> None:
    rule = await _rule(client, account, description_pattern="x")
    url = f"/v1/case-rules/{rule['id']}"
    r = await client.patch(url, json={"set_type": "other", "version": 1}, headers=account.headers())
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (await client.patch(url, json={"name": "y", "version": 1}, headers=account.headers())).status_code == 409
    listed = (await client.get("/v1/case-rules", headers=account.headers())).json()["data"]
    assert [x["id"] for x in listed] == [rule["id"]]
    assert (await client.delete(url, headers=account.headers())).status_code == 204
    assert (await client.get(url, headers=account.headers())).status_code == 404


async def test_rule_inputs_are_validated(client: httpx.AsyncClient, account: Tenant) -> None:
    bad = await client.post(
        "/v1/case-rules", json={"name": "r", "min_amount": "10", "max_amount": "5"}, headers=account.headers()
    )
    assert bad.status_code == 422
    bad_type = await client.post(
        "/v1/case-rules", json={"name": "r", "entry_types": ["invoice"]}, headers=account.headers()
    )
    assert bad_type.status_code == 422 and bad_type.json()["errors"][0]["loc"][:2] == ["body", "entry_types"]
    control = await client.post(
        "/v1/case-rules", json={"name": "r", "description_pattern": "a\u0000b"}, headers=account.headers()
    )
    assert control.status_code == 422


async def test_a_rule_update_refuses_null_for_required_fields_and_clears_optional_ones(
    client: httpx.AsyncClient, account: Tenant
) -> None:
    rule = await _rule(client, account, description_pattern="x", vendor_code="ACME1")
    url = f"/v1/case-rules/{rule['id']}"
    for field in ("name", "is_active", "entry_types", "pattern_kind", "set_tags", "position"):
        r = await client.patch(url, json={field: None}, headers=account.headers())
        assert r.status_code == 422, (field, r.text)
        assert r.json()["errors"][0]["loc"] == ["body", field]
    cleared = await client.patch(url, json={"vendor_code": None}, headers=account.headers())
    assert cleared.status_code == 200 and cleared.json()["vendor_code"] is None
