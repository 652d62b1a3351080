"""The contract is a product: committed, complete, and never drifting from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acorn_api.cli import render_openapi
from acorn_api.main import create_app
from acorn_api.settings import Settings

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
PUBLIC = {"/healthz", "/readyz", "/metrics", "/oauth/token", "/.well-known/jwks.json"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app(Settings(environment="test")).openapi()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_committed_contract_matches_the_app() -> None:
    assert COMMITTED.read_bytes() == render_openapi(), "openapi/openapi.json is stale: run `acorn-api openapi`"


def test_every_operation_has_id_summary_and_tags(schema: dict[str, Any]) -> None:
    for path, method, op in operations(schema):
        assert op.get("operationId"), (method, path)
        assert op.get("summary"), (method, path)
        assert op.get("tags"), (method, path)


def test_operation_ids_are_unique(schema: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert len(ids) == len(set(ids))


def test_protected_operations_document_scopes_and_auth_errors(schema: dict[str, Any]) -> None:
    for path, method, op in operations(schema):
        if path in PUBLIC:
            continue
        assert op.get("security"), (method, path)
        assert "Required scopes" in op.get("description", ""), (method, path)
        for status in ("401", "422"):
            assert status in op["responses"], (method, path, status)


def test_problem_responses_use_problem_json(schema: dict[str, Any]) -> None:
    for path, method, op in operations(schema):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and path not in {"/readyz", "/oauth/token"}:
                assert "application/problem+json" in response.get("content", {}), (method, path, status)
