from __future__ import annotations

import httpx
import pytest

from tests.conftest import Tenant
from tests.quotes.helpers import Quotes


@pytest.fixture
def q(client: httpx.AsyncClient, account: Tenant) -> Quotes:
    return Quotes(client, account)


@pytest.fixture
def scoped_key(sessionmaker, settings, account: Tenant):
    """An API key with explicit scopes and no role (so it never counts as finance)."""
    from acorn_api.accounts.service import issue_api_key

    async def make(*scopes: str) -> dict[str, str]:
        async with sessionmaker() as s:
            _, secret = await issue_api_key(s, settings, account.id, name="scoped", scopes=list(scopes))
            await s.commit()
        return account.headers(secret)

    return make
