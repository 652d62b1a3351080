"""Four-eyes compares people, not credentials (issue 12).

Credentials name the person they are issued to (``issued_to``); an admin who mints a second credential for
themself and approves with it a quote they submitted with the first is refused.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.accounts.factories import bearer, fetch_token
from tests.quotes.helpers import Quotes

ADMIN_PERSON = "first admin of Account A"  # what create_account issues the first admin key to


async def _new_key(q: Quotes, **body: Any) -> httpx.Response:
    return await q.client.post("/v1/api-keys", json={"name": "second key", **body}, headers=q.as_("admin"))


async def _submit_as_admin(q: Quotes) -> dict[str, Any]:
    quote = await q.drafted(await q.item(), region="NA", role="admin")
    r = await q.act(quote, "submit", role="admin")
    assert r.status_code == 200, r.text
    return r.json()


async def _approve(q: Quotes, quote: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return await q.client.post(
        f"/v1/quotes/{quote['id']}/approve",
        json={"version": quote["version"], "acknowledge_conflicts": True},
        headers=headers,
    )


async def test_an_admins_second_key_for_themself_cannot_approve_their_submission(q: Quotes) -> None:
    created = await _new_key(q, role="admin", issued_to="  First Admin  of account a ")
    assert created.status_code == 201, created.text
    quote = await _submit_as_admin(q)
    r = await _approve(q, quote, q.tenant.headers(created.json()["key"]))
    assert r.status_code == 403, r.text
    assert r.json()["type"].endswith("/four-eyes")
    assert ADMIN_PERSON in r.json()["detail"]


async def test_an_oauth_client_issued_to_the_submitter_cannot_approve(q: Quotes) -> None:
    r = await q.client.post(
        "/v1/oauth-clients",
        json={"name": "my ERP", "role": "finance", "issued_to": ADMIN_PERSON.upper()},
        headers=q.as_("admin"),
    )
    assert r.status_code == 201, r.text
    token = await fetch_token(q.client, r.json())
    quote = await _submit_as_admin(q)
    refused = await _approve(q, quote, bearer(token))
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/four-eyes")


async def test_another_persons_credential_may_approve(q: Quotes) -> None:
    created = await _new_key(q, role="finance", issued_to="jane.doe@brand.example")
    quote = await _submit_as_admin(q)
    r = await _approve(q, quote, q.tenant.headers(created.json()["key"]))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"


async def test_a_credential_that_can_approve_must_name_its_person(q: Quotes) -> None:
    for body in ({"role": "admin"}, {"role": "finance"}, {"scopes": ["quotes:approve"]}):
        for path in ("/v1/api-keys", "/v1/oauth-clients"):
            r = await q.client.post(path, json={"name": "anonymous", **body}, headers=q.as_("admin"))
            assert r.status_code == 422, (path, body, r.text)
            assert r.json()["errors"][0]["loc"] == ["body", "issued_to"]


async def test_a_credential_that_cannot_approve_may_leave_issued_to_out(q: Quotes) -> None:
    r = await _new_key(q, role="viewer")
    assert r.status_code == 201, r.text
    assert r.json()["issued_to"] is None


async def test_issued_to_is_validated(q: Quotes) -> None:
    for bad in ("   ", "legacy:123", "jane@", "12345", "x" * 321):
        r = await _new_key(q, role="finance", issued_to=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["loc"][:2] == ["body", "issued_to"]


async def test_issued_to_is_shown_in_responses(q: Quotes) -> None:
    created = await _new_key(q, role="finance", issued_to="Jane Doe")
    assert created.json()["issued_to"] == "Jane Doe"
    listed = await q.client.get("/v1/api-keys", headers=q.as_("admin"))
    assert {k["id"]: k["issued_to"] for k in listed.json()["data"]}[created.json()["id"]] == "Jane Doe"
