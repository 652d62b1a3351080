"""The OpenAPI links (core/openapi_links.py) point at real operations with real parameters."""

from __future__ import annotations

import re
from typing import Any

from acorn_api.main import create_app
from acorn_api.settings import Settings

SCHEMA = create_app(Settings(environment="test", log_json=False, log_level="WARNING")).openapi()
OPERATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    op["operationId"]: (path, op) for path, ops in SCHEMA["paths"].items() for op in ops.values() if "operationId" in op
}


def _links() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (source, name, link)
        for source, (_, op) in OPERATIONS.items()
        for response in op.get("responses", {}).values()
        for name, link in response.get("links", {}).items()
    ]


def test_every_link_names_an_operation_and_its_parameters() -> None:
    links = _links()
    assert len(links) > 100
    for source, name, link in links:
        assert link["operationId"] in OPERATIONS, (source, name)
        path, _ = OPERATIONS[link["operationId"]]
        wanted = set(re.findall(r"\{([^}]+)\}", path))
        given = {key.removeprefix("path.") for key in link.get("parameters", {})}
        assert given == wanted, (source, name, given, wanted)
        for expression in [*link.get("parameters", {}).values(), *link.get("requestBody", {}).values()]:
            assert expression.startswith(("$response.body#/", "$request.path.")), expression


def test_every_creation_links_to_reading_what_it_created() -> None:
    expected = {
        "create_store": "get_store",
        "create_item": "get_item",
        "create_quote": "get_quote",
        "create_webhook_endpoint": "get_webhook_endpoint",
        "create_connection": "get_connection",
        "start_sync": "get_sync_run",
        "create_import": "get_import",
        "create_case_rule": "get_case_rule",
        "create_import_mapping": "get_import_mapping",
    }
    found = {(source, link["operationId"]) for source, _, link in _links()}
    assert set(expected.items()) <= found


def test_versioned_actions_carry_the_version_over() -> None:
    submit = next(link for s, _, link in _links() if s == "create_quote" and link["operationId"] == "submit_quote")
    assert submit["requestBody"] == {"version": "$response.body#/version"}
    quote = next(link for s, _, link in _links() if s == "create_item" and link["operationId"] == "create_quote")
    assert quote["requestBody"] == {"item_id": "$response.body#/id"}
