"""API keys with each role can do exactly what the role allows: roles × one representative route per scope.

The routes come from the app itself (the scope each route declares), so a scope gains a row here as soon as
some route requires it.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from acorn_api.accounts.scopes import ROLE_SCOPES, Role, grants
from acorn_api.main import _required_scopes, create_app
from acorn_api.settings import Settings
from tests.conftest import Tenant


def _representatives() -> dict[str, tuple[str, str]]:
    """scope → (method, path) of one route that requires exactly that scope; GETs without ids preferred."""
    found: dict[str, tuple[str, str]] = {}
    app = create_app(Settings(environment="test", log_json=False, log_level="WARNING"))
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        scopes = _required_scopes(route)
        if len(scopes) != 1:
            continue
        method = sorted(context.methods or {"GET"})[0]
        candidate = (method, context.path)
        current = found.get(scopes[0])
        better = method == "GET" and "{" not in context.path
        if current is None or (better and not (current[0] == "GET" and "{" not in current[1])):
            found[scopes[0]] = candidate
    return found


ROUTES = _representatives()
CASES = [(role, scope) for role in Role for scope in sorted(ROUTES)]


def test_every_role_scope_has_a_route() -> None:
    assert {"stores:read", "stores:write", "admin", "audit:read"} <= set(ROUTES)


@pytest.mark.parametrize(("role", "scope"), CASES, ids=[f"{r.value}-{s}" for r, s in CASES])
async def test_role_can_do_exactly_what_it_allows(
    client: httpx.AsyncClient, account: Tenant, role: Role, scope: str
) -> None:
    method, path = ROUTES[scope]
    url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)  # ids are irrelevant: authorization is decided first
    r = await client.request(
        method, url, json={} if method != "GET" else None, headers=account.headers(account.keys[role.value])
    )
    allowed = grants(ROLE_SCOPES[role], scope)
    if allowed:
        assert r.status_code not in (401, 403), f"{role.value} should be allowed {method} {path}: {r.text}"
        if method == "GET" and "{" not in path:
            assert r.status_code == 200, r.text
    else:
        assert r.status_code == 403, f"{role.value} should be refused {method} {path}: {r.status_code}"
        assert r.json()["required_scopes"] == [scope]
