"""Stores: a chain's outlets or regional distribution points, the unit of pricing and reporting."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import Base, TenantMixin


class Store(TenantMixin, Base):
    __tablename__ = "stores"

    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(2))
    marketplace: Mapped[str] = mapped_column(String(2))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    vendor_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
    __extra_table_args__ = (
        UniqueConstraint("account_id", "code"),
        CheckConstraint("status IN ('active', 'archived')", name="status"),
        CheckConstraint("region IN ('NA', 'EU', 'FE')", name="region"),
        Index("ix_stores_vendor_codes", "vendor_codes", postgresql_using="gin"),
    )
