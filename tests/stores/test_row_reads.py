"""The row read path (``AccountScopedRepository.get_row``): compiled once, run straight on asyncpg in an autocommit
(read-only request) session, through the session inside a transaction; same answer and same scoping either way."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.db import Resources
from acorn_api.core.errors import NotFound
from acorn_api.stores.models import Store
from acorn_api.stores.repository import stores
from acorn_api.stores.schemas import StoreOut
from tests.conftest import AccountFactory, Tenant
from tests.stores.factories import store_body


@pytest.mark.committing
async def test_get_answers_what_post_created_and_other_accounts_get_404(
    committing_client: AsyncClient, make_committed_account: AccountFactory
) -> None:
    tenant = await make_committed_account("Row Read Co")
    other = await make_committed_account("Row Read Other Co")
    created = await committing_client.post(
        "/v1/stores", json=store_body(code=f"ROW-{uuid.uuid4().hex[:8]}"), headers=tenant.headers()
    )
    assert created.status_code == 201, created.text

    got = await committing_client.get(f"/v1/stores/{created.json()['id']}", headers=tenant.headers())
    assert got.status_code == 200, got.text
    assert got.json() == created.json()
    assert got.headers["etag"] == '"1"'

    hidden = await committing_client.get(f"/v1/stores/{created.json()['id']}", headers=other.headers())
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == "No such store."


@pytest.mark.committing
async def test_direct_and_session_paths_return_the_same_row(
    committing_client: AsyncClient, make_committed_account: AccountFactory, committing_app: object
) -> None:
    tenant: Tenant = await make_committed_account("Row Paths Co")
    created = await committing_client.post(
        "/v1/stores", json=store_body(code=f"ROW-{uuid.uuid4().hex[:8]}"), headers=tenant.headers()
    )
    store_id = uuid.UUID(created.json()["id"])
    resources: Resources = committing_app.state.resources  # type: ignore[attr-defined]
    autocommit = resources.autocommit_sessionmaker()
    assert autocommit is not None
    async with autocommit() as read_session:  # the read-only request's session: asyncpg directly
        direct = await stores.get_row(read_session, tenant.id, store_id)
    async with resources.sessionmaker() as write_session:  # a transaction: through the session
        through_session = dict(await stores.get_row(write_session, tenant.id, store_id))
        entity = await stores.get(write_session, tenant.id, store_id)
    assert direct == through_session
    assert StoreOut.model_validate(direct) == StoreOut.model_validate(entity)
    assert StoreOut.model_validate(direct).metadata == {"erp_id": "4711"}


async def test_inside_a_transaction_it_sees_the_transactions_own_writes(session: AsyncSession, account: Tenant) -> None:
    fields = {k: v for k, v in store_body(code="ROW-TX").items() if k != "metadata"}
    store = Store(**fields, metadata_={"k": "v"})
    stores.add(session, account.id, store)
    await session.flush()
    row = await stores.get_row(session, account.id, store.id)
    assert row["code"] == "ROW-TX" and row["metadata_"] == {"k": "v"}
    with pytest.raises(NotFound):
        await stores.get_row(session, uuid.uuid4(), store.id)
