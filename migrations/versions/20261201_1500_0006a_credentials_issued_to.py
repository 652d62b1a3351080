"""credentials issued_to: the person an API key or OAuth client is issued to (four-eyes by person)

Existing credentials are backfilled with ``legacy:<id>``: each counts as its own person, which is exactly
the rule they lived under (four-eyes by credential), until an admin replaces them with credentials that
name their holder. New credentials that can approve quotes must name one (the API checks it).

Revision ID: 0006a
Revises: 0005b
Create Date: 2026-12-01 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006a"
down_revision: str | Sequence[str] | None = "0005b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("api_keys", "oauth_clients")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("issued_to", sa.String(length=320), nullable=True))
        op.execute(f"UPDATE {table} SET issued_to = 'legacy:' || id::text WHERE issued_to IS NULL")


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "issued_to")
