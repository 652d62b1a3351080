"""Secrets and their hashes are compared in constant time everywhere (issue 12).

A plain ``==`` on a secret's hash leaks, through its timing, how many leading characters of a guess were
right. This walks every module under ``src/`` and refuses an ``==``/``!=`` whose operand is named like a
secret, a hash or a digest; such comparisons must go through ``hmac.compare_digest``.
"""

from __future__ import annotations

import ast
import hmac
import re
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import cache
from acorn_api.settings import Settings
from tests.conftest import Tenant

SRC = Path(__file__).resolve().parents[2] / "src"
SECRET_NAME = re.compile(r"(secret|password|_hash$|^digest$|^hash$|refresh_token|client_secret)", re.IGNORECASE)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _plain_secret_comparisons(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        # ``x.secret_hash == None`` style checks and SQL expressions on columns are not comparisons of values.
        if any(isinstance(o, ast.Constant) for o in operands):
            continue
        names = [n for n in (_name(o) for o in operands) if n]
        if any(SECRET_NAME.search(n) for n in names) and not _is_sql_column(node):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def _is_sql_column(node: ast.Compare) -> bool:
    """``Model.column == value`` inside a query builds SQL; the database compares, not Python."""
    left = node.left
    return isinstance(left, ast.Attribute) and isinstance(left.value, ast.Name) and left.value.id[:1].isupper()


def test_no_secret_or_hash_is_compared_with_equals() -> None:
    offenders = [hit for path in sorted(SRC.rglob("*.py")) for hit in _plain_secret_comparisons(path)]
    assert offenders == [], f"use hmac.compare_digest: {offenders}"


async def test_api_key_lookup_compares_hashes_with_compare_digest(
    session: AsyncSession, settings: Settings, account: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(cache.hmac, "compare_digest", spy)
    cache.forget_credentials()
    state = await cache.api_key_state(session, settings, account.admin_key)
    assert state is not None
    assert calls, "the stored hash was compared without hmac.compare_digest"
