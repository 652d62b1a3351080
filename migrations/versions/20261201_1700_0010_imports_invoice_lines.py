"""invoice lines: the lines of ERP invoice line files, keyed and unique per account like the other ledger tables

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 17:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("asin", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("source_import_id", sa.Uuid(), nullable=True),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("natural_key", sa.String(length=300), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.CheckConstraint("source_row IS NULL OR source_row > 0", name=op.f("ck_invoice_lines_source_row")),
        sa.ForeignKeyConstraint(
            ["account_id", "source_import_id"],
            ["imports.account_id", "imports.id"],
            name=op.f("fk_invoice_lines_account_id_source_import_id_imports"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_invoice_lines_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("account_id", "natural_key", name=op.f("uq_invoice_lines_account_id_natural_key")),
    )
    op.create_index(
        "ix_invoice_lines_account_id_invoice_number", "invoice_lines", ["account_id", "invoice_number"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_invoice_lines_account_id_invoice_number", table_name="invoice_lines")
    op.drop_table("invoice_lines")
