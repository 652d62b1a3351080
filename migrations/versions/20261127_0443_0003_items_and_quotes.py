"""items and quotes: items, quotes (approved periods never overlap: exclusion constraint), events, policies

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:43:49.405612+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pg_trgm serves `q` (ILIKE substring search) on items; btree_gist lets the quotes exclusion constraint
    # mix equality on uuid/text columns with range overlap. Both ship with PostgreSQL (contrib).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "items",
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("vendor_sku", sa.String(length=64), nullable=False),
        sa.Column("ean", sa.String(length=13), nullable=True),
        sa.Column("upc", sa.String(length=12), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("unit_of_measure", sa.String(length=10), server_default="Eaches", nullable=False),
        sa.Column("case_size", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.CheckConstraint(
            "(unit_of_measure = 'Cases' AND case_size IS NOT NULL AND case_size > 0) OR (unit_of_measure = 'Eaches' AND case_size IS NULL)",
            name=op.f("ck_items_case_size"),
        ),
        sa.CheckConstraint("asin ~ '^[A-Z0-9]{10}$'", name=op.f("ck_items_asin")),
        sa.CheckConstraint("status IN ('active', 'discontinued')", name=op.f("ck_items_status")),
        sa.CheckConstraint("unit_of_measure IN ('Eaches', 'Cases')", name=op.f("ck_items_unit_of_measure")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_items_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("account_id", "asin", name=op.f("uq_items_account_id_asin")),
        sa.UniqueConstraint("account_id", "id", name=op.f("uq_items_account_id_id")),
        sa.UniqueConstraint("account_id", "vendor_sku", name=op.f("uq_items_account_id_vendor_sku")),
    )
    op.create_index("ix_items_account_id_created_at", "items", ["account_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_items_brand_trgm",
        "items",
        ["brand"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"brand": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_items_title_trgm",
        "items",
        ["title"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )
    op.create_table(
        "quote_policies",
        sa.Column("finance_threshold_pct", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("hard_cap_pct", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("conflict_tolerance_pct", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.CheckConstraint("conflict_tolerance_pct >= 0", name=op.f("ck_quote_policies_conflict_tolerance_pct")),
        sa.CheckConstraint("finance_threshold_pct >= 0", name=op.f("ck_quote_policies_finance_threshold_pct")),
        sa.CheckConstraint("hard_cap_pct >= finance_threshold_pct", name=op.f("ck_quote_policies_hard_cap_pct")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quote_policies_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_policies")),
        sa.UniqueConstraint("account_id", "id", name=op.f("uq_quote_policies_account_id_id")),
        sa.UniqueConstraint("account_id", name="uq_quote_policies_account_id"),
    )
    op.create_table(
        "quotes",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("scope_type", sa.String(length=12), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=True),
        sa.Column("region", sa.String(length=2), nullable=True),
        sa.Column("marketplace", sa.String(length=2), nullable=True),
        sa.Column(
            "scope_key",
            sa.Text(),
            sa.Computed(
                "CASE WHEN store_id IS NOT NULL THEN 'store:' || store_id::text WHEN marketplace IS NOT NULL THEN 'marketplace:' || marketplace ELSE 'region:' || region || ':' || currency END",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cost_price", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("list_price", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("min_order_quantity", sa.Integer(), nullable=True),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("override_reason", sa.String(length=1000), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=1000), nullable=True),
        sa.Column("baseline_price", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("change_pct", sa.Numeric(precision=12, scale=4), nullable=True),
        sa.Column("superseded_by_id", sa.Uuid(), nullable=True),
        sa.Column("import_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        postgresql.ExcludeConstraint(
            (sa.column("account_id"), "="),
            (sa.column("item_id"), "="),
            (sa.column("scope_key"), "="),
            (sa.text("tstzrange(effective_from, effective_to)"), "&&"),
            where=sa.text("status = 'approved'"),
            using="gist",
            name="ex_quotes_approved_no_overlap",
        ),
        sa.CheckConstraint(
            "(scope_type = 'store' AND store_id IS NOT NULL AND region IS NULL AND marketplace IS NULL) OR (scope_type = 'marketplace' AND store_id IS NULL AND region IS NOT NULL AND marketplace IS NOT NULL) OR (scope_type = 'region' AND store_id IS NULL AND region IS NOT NULL AND marketplace IS NULL)",
            name=op.f("ck_quotes_scope"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved', 'rejected', 'superseded', 'expired', 'withdrawn')",
            name=op.f("ck_quotes_status"),
        ),
        sa.CheckConstraint("cost_price > 0", name=op.f("ck_quotes_cost_price_positive")),
        sa.CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name=op.f("ck_quotes_period")),
        sa.CheckConstraint("list_price IS NULL OR list_price > 0", name=op.f("ck_quotes_list_price_positive")),
        sa.CheckConstraint(
            "min_order_quantity IS NULL OR min_order_quantity > 0", name=op.f("ck_quotes_min_order_quantity")
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "item_id"], ["items.account_id", "items.id"], name="fk_quotes_item", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "store_id"], ["stores.account_id", "stores.id"], name="fk_quotes_store", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quotes_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("account_id", "id", name=op.f("uq_quotes_account_id_id")),
    )
    op.create_index("ix_quotes_account_id_created_at", "quotes", ["account_id", "created_at", "id"], unique=False)
    op.create_index("ix_quotes_account_id_item_id", "quotes", ["account_id", "item_id"], unique=False)
    op.create_index("ix_quotes_account_id_status", "quotes", ["account_id", "status"], unique=False)
    op.create_index("ix_quotes_account_id_store_id", "quotes", ["account_id", "store_id"], unique=False)
    op.create_index("ix_quotes_scope", "quotes", ["account_id", "scope_key", "item_id", "effective_from"], unique=False)
    op.create_table(
        "quote_events",
        sa.Column("quote_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "quote_id"],
            ["quotes.account_id", "quotes.id"],
            name="fk_quote_events_quote",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quote_events_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_events")),
        sa.UniqueConstraint("account_id", "id", name=op.f("uq_quote_events_account_id_id")),
    )
    op.create_index(
        "ix_quote_events_account_id_quote_id_created_at",
        "quote_events",
        ["account_id", "quote_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    # The extensions stay: other tables may use them.
    op.drop_index("ix_quote_events_account_id_quote_id_created_at", table_name="quote_events")
    op.drop_table("quote_events")
    op.drop_index("ix_quotes_scope", table_name="quotes")
    op.drop_index("ix_quotes_account_id_store_id", table_name="quotes")
    op.drop_index("ix_quotes_account_id_status", table_name="quotes")
    op.drop_index("ix_quotes_account_id_item_id", table_name="quotes")
    op.drop_index("ix_quotes_account_id_created_at", table_name="quotes")
    op.drop_table("quotes")
    op.drop_table("quote_policies")
    op.drop_index(
        "ix_items_title_trgm", table_name="items", postgresql_using="gin", postgresql_ops={"title": "gin_trgm_ops"}
    )
    op.drop_index(
        "ix_items_brand_trgm", table_name="items", postgresql_using="gin", postgresql_ops={"brand": "gin_trgm_ops"}
    )
    op.drop_index("ix_items_account_id_created_at", table_name="items")
    op.drop_table("items")
