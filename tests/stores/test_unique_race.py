"""A duplicate store code that slips past the check (two requests at once) is the same 409, not a 500."""

from __future__ import annotations

import asyncio

import pytest
from httpx import AsyncClient

from acorn_api.stores.repository import stores
from tests.conftest import AccountFactory, Tenant
from tests.stores.factories import store_body


@pytest.fixture
def blind_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The moment of the race: the pre-check has seen nothing, the other insert is already there."""

    async def never_taken(*args: object, **kwargs: object) -> bool:
        return False

    monkeypatch.setattr(stores, "code_taken", never_taken)


async def test_a_duplicate_code_past_the_check_is_the_checks_409(
    client: AsyncClient, account: Tenant, blind_check: None
) -> None:
    first = await client.post("/v1/stores", json=store_body(code="RACE-1"), headers=account.headers())
    assert first.status_code == 201
    second = await client.post("/v1/stores", json=store_body(code="RACE-1"), headers=account.headers())
    assert second.status_code == 409, second.text
    assert second.json()["type"].endswith("/store-code-taken")
    assert second.json()["errors"][0]["loc"] == ["body", "code"]


async def test_renaming_to_a_code_taken_past_the_check_is_the_checks_409(
    client: AsyncClient, account: Tenant, blind_check: None
) -> None:
    await client.post("/v1/stores", json=store_body(code="RACE-A"), headers=account.headers())
    other = (await client.post("/v1/stores", json=store_body(code="RACE-B"), headers=account.headers())).json()
    r = await client.patch(
        f"/v1/stores/{other['id']}", json={"code": "RACE-A", "version": other["version"]}, headers=account.headers()
    )
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/store-code-taken")


@pytest.mark.committing
async def test_concurrent_duplicates_make_one_store_and_409s(
    committing_client: AsyncClient, make_committed_account: AccountFactory
) -> None:
    tenant = await make_committed_account("Race Co")
    answers = await asyncio.gather(
        *(
            committing_client.post("/v1/stores", json=store_body(code="SAME-1"), headers=tenant.headers())
            for _ in range(6)
        )
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in answers]
