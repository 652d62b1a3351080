"""invoice_balances.deductions: json text with exact string amounts, instead of jsonb

A full matching run compares every invoice's computed balance with the stored one and writes only those that
changed. With ``jsonb`` it had to parse the computed per-type breakdown of every invoice to compare it (~0.5 s per
million invoices, most of them unchanged); as ``json`` the matching statement writes the text itself in a fixed
key order and compares text with text. The amounts become JSON strings ("100.0000"): a reader's JSON parser
turned the numbers into binary floats, which cannot hold every NUMERIC(20, 4) amount exactly.

The rows are rewritten in the form the matching statement produces (``matching_sql._deductions_json``), so the
first run after this migration finds them unchanged.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 22:15:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the deduction-like entry types in matching_sql.DEDUCTION_LIKE's order as of this revision (a migration must
# not follow later changes of the application's code)
DEDUCTION_TYPES = (
    "shortage_claim",
    "price_claim",
    "chargeback",
    "coop",
    "return",
    "damage_allowance",
    "provision",
    "price_protection",
    "withholding",
    "terms_discount",
    "adjustment",
)


def upgrade() -> None:
    pairs = ", ".join(
        f"""CASE WHEN deductions ? '{t}' THEN '"{t}": "' || (deductions ->> '{t}') || '"' END""" for t in DEDUCTION_TYPES
    )
    op.execute(
        f"ALTER TABLE invoice_balances ALTER COLUMN deductions TYPE json "
        f"USING ('{{' || concat_ws(', ', {pairs}) || '}}')::json"
    )


def downgrade() -> None:
    # jsonb of string amounts back to numbers
    pairs = ", ".join(
        f"""CASE WHEN deductions::jsonb ? '{t}' THEN '"{t}": ' || (deductions::jsonb ->> '{t}') END"""
        for t in DEDUCTION_TYPES
    )
    op.execute(
        f"ALTER TABLE invoice_balances ALTER COLUMN deductions TYPE jsonb "
        f"USING ('{{' || concat_ws(', ', {pairs}) || '}}')::jsonb"
    )
