"""OWASP API1 (broken object level authorization) beyond path parameters.

tests/test_isolation.py walks every route with path parameters (every method) with account B's ids. Here:
ids that travel in a *body* — a quote's ``item_id``/``store_id``, an invoice submission's ``connection_id``,
a redelivery's ``endpoint_id``, the cases of a bulk transition, an upload's ``store_id`` and ``mapping_id`` —
found from the OpenAPI document (every ``*_id`` property of every JSON body), each given account B's real
object: the answer is 404 (or a 422 naming that field) and neither account's data changes.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Tenant
from tests.security.test_property_level import _json_body_schema
from tests.test_isolation import OPS, Op, _create, _fingerprint, _ids_of, _query, _url, sample

REFERENCES = [
    (op, field)
    for op in OPS
    if (schema := _json_body_schema(op)) is not None
    for field in sorted(schema.get("properties", {}))
    # an Amazon party code and an LWA client id, not ACORN ids
    if field.endswith("_id") and field not in ("remit_to_party_id", "client_id")
]
# operation → fields to add for rules the schema cannot express
BODY_EXTRAS: dict[str, dict[str, Any]] = {"POST /v1/quotes": {"region": "NA"}}


def test_the_walk_found_the_body_references_we_know() -> None:
    found = {(op.id, field) for op, field in REFERENCES}
    assert {("POST /v1/quotes", "item_id"), ("POST /v1/invoice-submissions", "connection_id")} <= found


@pytest.mark.parametrize(("op", "field"), REFERENCES, ids=lambda v: v.id if isinstance(v, Op) else v)
async def test_another_accounts_id_in_a_body_is_404_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    account: Tenant,
    other_account: Tenant,
    op: Op,
    field: str,
) -> None:
    theirs: dict[str, str] = {}
    await _create(client, other_account, field, theirs)
    if field not in theirs:
        pytest.skip(f"no generic way to create a {field} for account B")
    mine = await _ids_of(client, account, op)
    schema = _json_body_schema(op)
    assert schema is not None
    body: dict[str, Any] = {**sample(schema), **BODY_EXTRAS.get(op.id, {})}
    for other in [f for f in body if f.endswith("_id") and f != field]:  # the body's other references: A's own
        await _create(client, account, other, mine)
        if other in mine:
            body[other] = mine[other]
    body[field] = theirs[field]
    if op.id == "POST /v1/quotes" and field == "store_id":
        body.pop("region", None)  # a quote is for a store or a region, not both
    before = (await _fingerprint(session, account.id), await _fingerprint(session, other_account.id))
    r = await client.request(
        op.method,
        _url(op, mine),
        params=_query(op),
        json=body,
        headers={**account.headers(), "Idempotency-Key": uuid.uuid4().hex},
    )
    named = r.status_code == 422 and any(e["loc"][:2] == ["body", field] for e in r.json().get("errors") or [])
    assert r.status_code == 404 or named, f"{op.id} with B's {field}: {r.status_code} {r.text}"
    after = (await _fingerprint(session, account.id), await _fingerprint(session, other_account.id))
    assert after == before, f"{op.id} with B's {field} changed data"


async def test_a_bulk_transition_mixing_accounts_moves_only_the_callers_cases(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, other_account: Tenant, make_case: Any
) -> None:
    mine = await make_case(account.id)
    theirs = await make_case(other_account.id)
    before = await _fingerprint(session, other_account.id)
    r = await client.post(
        "/v1/refund-cases/bulk-transitions",
        json={"items": [{"id": str(theirs.id), "to": "closed"}, {"id": str(mine.id), "to": "closed"}]},
        headers=account.headers(),
    )
    assert r.status_code == 200, r.text
    results = {item["id"]: item for item in r.json()["results"]}
    assert results[str(theirs.id)]["ok"] is False and results[str(theirs.id)]["problem"]["status"] == 404
    assert results[str(mine.id)]["ok"] is True
    assert await _fingerprint(session, other_account.id) == before


async def test_an_upload_naming_another_accounts_store_or_mapping_is_422_naming_it_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, other_account: Tenant
) -> None:
    theirs: dict[str, str] = {}
    await _create(client, other_account, "store_id", theirs)
    await _create(client, other_account, "mapping_id", theirs)
    assert {"store_id", "mapping_id"} <= set(theirs)
    csv = b"Invoice Number,Invoice Date,Amount\nINV-1,2026-01-05,10.00\n"
    before = (await _fingerprint(session, account.id), await _fingerprint(session, other_account.id))
    for name in ("store_id", "mapping_id"):
        r = await client.post(
            "/v1/imports",
            data={"report_type": "invoices", name: theirs[name]},
            files={"file": ("invoices.csv", csv, "text/csv")},
            headers={**account.headers(), "Idempotency-Key": uuid.uuid4().hex},
        )
        # a reference inside the form answers as one inside a JSON body (a quote's store_id): 422 naming it,
        # the same for both fields (the store used to be a 404, the mapping a 422)
        assert r.status_code == 422, f"upload with B's {name}: {r.status_code} {r.text}"
        assert [e["loc"] for e in r.json()["errors"]] == [["body", name]], r.text
        assert (
            r.json()["errors"][0]["msg"]
            == f"no such {'store' if name == 'store_id' else 'import mapping'} in this account"
        )
    assert (await _fingerprint(session, account.id), await _fingerprint(session, other_account.id)) == before
