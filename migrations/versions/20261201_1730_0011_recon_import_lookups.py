"""reconciliation: index the lookups of an incremental run (invoices of an import, cases worked since a time)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_invoices_account_id_source_import_id", "invoices", ["account_id", "source_import_id"], unique=False
    )
    op.create_index("ix_refund_cases_account_id_updated_at", "refund_cases", ["account_id", "updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_refund_cases_account_id_updated_at", table_name="refund_cases")
    op.drop_index("ix_invoices_account_id_source_import_id", table_name="invoices")
