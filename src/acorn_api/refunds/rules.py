"""Classification rules compiled to SQL: one ``CASE`` per attribute, so 200,000 deductions classify in one statement.

Rules are evaluated in ``position`` order. For each attribute (type, subtype, assignee, tags, needs review) the
first matching rule that *sets* that attribute wins; an attribute no matching rule sets comes from the built-in
defaults (:mod:`acorn_api.refunds.policy`). ``rule_id`` is the first matching rule.

Patterns are never regular expressions (no ReDoS): ``contains`` is a case-insensitive substring, ``glob`` an
anchored case-insensitive wildcard match (``*`` any run of characters, ``?`` one character); both compile to
``ILIKE`` with every other character escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, String, Text, Uuid, and_, case, cast, func, literal, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from acorn_api.ledger.models import EntryType
from acorn_api.refunds.models import CaseRule, CaseType
from acorn_api.refunds.policy import CHARGEBACK_SUBTYPES, DEFAULT_TYPE

Expr = Any  # a column, an attribute or an expression


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(pattern: str, kind: str) -> str:
    """The ``ILIKE`` pattern (escape ``\\``) for a rule's ``contains`` or ``glob`` pattern."""
    if kind == "contains":
        return f"%{escape_like(pattern)}%"
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(escape_like(ch))
    return "".join(out)


@dataclass(frozen=True)
class Source:
    """The columns a rule looks at, wherever they come from (a new ledger entry or an existing case)."""

    entry_type: Expr
    description: Expr
    vendor_code: Expr
    store_id: Expr
    amount: Expr  # magnitude, positive


@dataclass(frozen=True)
class Classification:
    type_: Expr
    subtype: Expr
    assignee: Expr
    tags: Expr
    needs_review: Expr
    rule_id: Expr


def matches(rule: CaseRule, src: Source) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if rule.entry_types:
        conditions.append(src.entry_type.in_(list(rule.entry_types)))
    if rule.description_pattern:
        pattern = like_pattern(rule.description_pattern, rule.pattern_kind)
        conditions.append(func.coalesce(src.description, "").ilike(literal(pattern, String), escape="\\"))
    if rule.vendor_code:
        conditions.append(src.vendor_code == rule.vendor_code)
    if rule.store_id:
        conditions.append(src.store_id == rule.store_id)
    if rule.min_amount is not None:
        conditions.append(src.amount >= rule.min_amount)
    if rule.max_amount is not None:
        conditions.append(src.amount <= rule.max_amount)
    return and_(true(), *conditions)


def default_subtype(src: Source) -> Expr:
    is_chargeback = src.entry_type == EntryType.chargeback.value
    desc = func.coalesce(src.description, "")
    whens: list[tuple[Any, Any]] = [
        (and_(is_chargeback, desc.ilike(literal(like_pattern(word, "contains"), String), escape="\\")), subtype)
        for word, subtype in CHARGEBACK_SUBTYPES
    ]
    whens.append((is_chargeback, func.left(src.description, 100)))
    return case(*whens, else_=None)


def classify(rules: Sequence[CaseRule], src: Source, review_threshold: Decimal) -> Classification:
    """SQL expressions for every attribute the rules set, with the built-in defaults underneath."""
    active = [r for r in rules if r.is_active]
    conds = [(r, matches(r, src)) for r in active]

    default_type = case(
        *((src.entry_type == entry, literal(t.value, String)) for entry, t in DEFAULT_TYPE.items()),
        else_=literal(CaseType.other.value, String),
    )

    def pick(attr: str, default: Expr, type_: Any) -> Expr:
        whens = [(c, cast(literal(getattr(r, attr)), type_)) for r, c in conds if _sets(r, attr)]
        return case(*whens, else_=default) if whens else default

    return Classification(
        type_=pick("set_type", default_type, String),
        subtype=pick("set_subtype", default_subtype(src), String),
        assignee=pick("set_assignee", cast(literal(None), String), String),
        tags=pick("set_tags", cast(literal([], ARRAY(Text)), ARRAY(Text)), ARRAY(Text)),
        needs_review=pick("needs_review", src.amount >= review_threshold, Boolean),
        rule_id=case(*((c, cast(literal(r.id), Uuid)) for r, c in conds), else_=cast(literal(None), Uuid))
        if conds
        else cast(literal(None), Uuid),
    )


def _sets(rule: CaseRule, attr: str) -> bool:
    value = getattr(rule, attr)
    if attr == "set_tags":
        return bool(value)
    return value is not None
