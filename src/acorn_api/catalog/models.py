"""Items: what a vendor sells to Amazon, known by ASIN and by the vendor's own SKU."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import Base, TenantMixin


class Item(TenantMixin, Base):
    __tablename__ = "items"

    asin: Mapped[str] = mapped_column(String(10))
    vendor_sku: Mapped[str] = mapped_column(String(64))
    ean: Mapped[str | None] = mapped_column(String(13))
    upc: Mapped[str | None] = mapped_column(String(12))
    title: Mapped[str] = mapped_column(String(500))
    brand: Mapped[str | None] = mapped_column(String(200))
    unit_of_measure: Mapped[str] = mapped_column(String(10), default="Eaches", server_default="Eaches")
    case_size: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
    __extra_table_args__ = (
        UniqueConstraint("account_id", "asin"),
        UniqueConstraint("account_id", "vendor_sku"),
        CheckConstraint("status IN ('active', 'discontinued')", name="status"),
        CheckConstraint("unit_of_measure IN ('Eaches', 'Cases')", name="unit_of_measure"),
        CheckConstraint(
            "(unit_of_measure = 'Cases' AND case_size IS NOT NULL AND case_size > 0) "
            "OR (unit_of_measure = 'Eaches' AND case_size IS NULL)",
            name="case_size",
        ),
        CheckConstraint("asin ~ '^[A-Z0-9]{10}$'", name="asin"),
        # `q` is a substring search (ILIKE '%...%') over title and brand: trigram GIN indexes serve it for
        # any pattern of 3+ characters, including fragments of words and model numbers, which full-text
        # search (whole lexemes) would miss.
        Index("ix_items_title_trgm", "title", postgresql_using="gin", postgresql_ops={"title": "gin_trgm_ops"}),
        Index("ix_items_brand_trgm", "brand", postgresql_using="gin", postgresql_ops={"brand": "gin_trgm_ops"}),
        Index("ix_items_account_id_created_at", "account_id", "created_at", "id"),
    )
