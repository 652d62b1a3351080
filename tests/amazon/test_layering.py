"""The Amazon domain's imports point one way: routers -> services -> repositories; jobs -> services."""

from __future__ import annotations

import ast
from pathlib import Path

import acorn_api.amazon

PACKAGE = Path(acorn_api.amazon.__file__).parent
SERVICES = ("connections_service", "sync_service", "reads_service", "submissions_service")


def imports(module: str) -> list[tuple[str, list[str]]]:
    """(module imported from, names) for every ``from x import ...`` of ``module``."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_the_service_is_split_by_resource() -> None:
    assert not (PACKAGE / "service.py").exists()
    for name in SERVICES:
        assert (PACKAGE / f"{name}.py").exists()


def test_routers_and_jobs_reach_data_only_through_services() -> None:
    for module in ("router", "jobs"):
        for source, names in imports(module):
            assert not source.endswith(".repository"), (module, source)
            assert "repository" not in names, (module, source, names)
            assert not [n for n in names if n.startswith("_")], (module, source, names)  # no private helpers


def test_services_never_import_routers_or_jobs() -> None:
    for module in (*SERVICES, "sync", "connector"):
        for source, names in imports(module):
            assert source not in ("acorn_api.amazon.router", "acorn_api.amazon.jobs"), (module, source)
            assert not {"router", "jobs"} & set(names), (module, source, names)
