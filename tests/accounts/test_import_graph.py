"""Module dependencies stay one-directional (issue 12).

``accounts``: ``auth`` ↔ ``tokens`` ↔ ``cache`` used to import each other (hidden behind imports inside
functions). Routers: HTTP only, so they call services, never another domain's repository, and never a
``_private`` helper of another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "acorn_api"


def _imports(path: Path, package: str) -> set[str]:
    """Every acorn_api module this file imports, at module level or inside functions (not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package))
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_accounts_modules_import_each_other_without_a_cycle() -> None:
    package = "acorn_api.accounts"
    modules = {f"{package}.{p.stem}": p for p in (PACKAGE / "accounts").glob("*.py") if p.stem != "__init__"}
    graph = {name: {m for m in _imports(path, package) if m in modules} for name, path in modules.items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def _router_offences(path: Path) -> list[str]:
    domain = path.parent.name
    tree = ast.parse(path.read_text())
    offences = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("acorn_api."):
            parts = node.module.split(".")
            if parts[-1] == "repository" and parts[1] not in (domain, "core"):
                offences.append(f"imports {node.module}")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    offences.append(f"imports private {node.module}.{alias.name}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id not in ("self", "cls")
            and node.value.id[:1].islower()
        ):
            offences.append(f"calls private {node.value.id}.{node.attr} (line {node.lineno})")
    return offences


def test_routers_call_services_not_other_domains_repositories_or_private_helpers() -> None:
    # amazon/ is being restructured in parallel (issue 12, service split); it is held to this rule there.
    routers = [p for p in PACKAGE.rglob("*router.py") if p.parent.name != "amazon"]
    found = {str(p.relative_to(PACKAGE)): o for p in routers if (o := _router_offences(p))}
    assert found == {}
