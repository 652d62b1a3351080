"""OWASP API5 (broken function-level authorization): every scope, every route.

For each scope of the catalogue, a credential holding every *other* scope (never ``admin``) is refused with
403 ``insufficient-scope`` on every route that needs that scope, and a credential holding only that scope is
let through (the control). The routes and their scopes come from the app's own OpenAPI document, so a new
route is checked the day it is added. (The viewer-on-write walk and the 401 walk are in tests/test_isolation.py.)
"""

from __future__ import annotations

import httpx
import pytest

from acorn_api.accounts.scopes import ADMIN_SCOPE, SCOPES
from tests.accounts.factories import create_api_key
from tests.conftest import Tenant
from tests.test_isolation import PROTECTED, Op, call


def _scopes(op: Op) -> set[str]:
    """The scopes the operation documents (each alternative lists one; ``admin`` always works)."""
    found: set[str] = set()
    for requirement in (op.operation or {}).get("security", []):
        for scopes in requirement.values():
            found |= set(scopes)
    return found


BY_SCOPE: dict[str, list[Op]] = {
    scope: [op for op in PROTECTED if op.operation is not None and scope in _scopes(op)] for scope in SCOPES
}


def test_every_protected_route_documents_exactly_one_scope() -> None:
    undocumented = [op.id for op in PROTECTED if op.operation is not None and len(_scopes(op)) != 1]
    assert not undocumented


@pytest.mark.parametrize("scope", sorted(s for s in SCOPES if BY_SCOPE[s]))
async def test_a_credential_without_the_scope_is_403_on_every_route_that_needs_it(
    client: httpx.AsyncClient, account: Tenant, scope: str
) -> None:
    others = sorted(s for s in SCOPES if s not in (scope, ADMIN_SCOPE))
    lacking = (await create_api_key(client, account, role=None, scopes=others))["key"]
    only = (await create_api_key(client, account, role=None, scopes=[scope]))["key"]
    for op in BY_SCOPE[scope]:
        r = await call(client, op, account.headers(lacking))
        assert r.status_code == 403, f"{op.id} without {scope}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/insufficient-scope"), r.text
        allowed = await call(client, op, account.headers(only))
        assert allowed.status_code not in (401, 403), f"{op.id} with only {scope}: {allowed.status_code} {allowed.text}"
