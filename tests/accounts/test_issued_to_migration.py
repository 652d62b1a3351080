"""Migration 0006a gives existing credentials an ``issued_to`` of ``legacy:<id>`` (each its own person)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from acorn_api.migrate import upgrade
from acorn_api.settings import to_async_database_url
from tests.conftest import ServerUrls, fresh_database


async def _sql(url: str, statement: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_async_engine(to_async_database_url(url))
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
    await engine.dispose()
    return rows


def test_existing_credentials_are_backfilled_as_legacy_people(server_urls: ServerUrls) -> None:
    account, key, client = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with fresh_database(server_urls.admin_database_url, migrate=False) as url:
        upgrade(url, "0004")
        asyncio.run(_sql(url, "INSERT INTO accounts (id, name) VALUES (:id, 'Old Co')", id=account))
        asyncio.run(
            _sql(
                url,
                "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, role) "
                "VALUES (:id, :account, 'old key', 'acn_oldoldoldold', 'h', 'admin')",
                id=key,
                account=account,
            )
        )
        asyncio.run(
            _sql(
                url,
                "INSERT INTO oauth_clients (id, account_id, name, client_id, secret_hash, role) "
                "VALUES (:id, :account, 'old client', 'acc_oldoldoldold', 'h', 'finance')",
                id=client,
                account=account,
            )
        )
        upgrade(url, "0006a")
        keys = asyncio.run(_sql(url, "SELECT issued_to FROM api_keys"))
        clients = asyncio.run(_sql(url, "SELECT issued_to FROM oauth_clients"))
    assert keys == [(f"legacy:{key}",)]
    assert clients == [(f"legacy:{client}",)]
