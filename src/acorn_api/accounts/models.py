"""Accounts (the tenants) and their credentials: API keys and OAuth2 clients."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.models import Base, IdMixin, TenantMixin, TimestampMixin

ROLE_CHECK = "role IS NULL OR role IN ('admin', 'purchasing', 'operations', 'finance', 'viewer')"


class Account(IdMixin, TimestampMixin, Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")

    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status"),)


class ApiKey(TenantMixin, Base):
    """A long random secret shown once; only its keyed hash is kept.

    The visible ``prefix`` finds the row in one indexed lookup; the hash proves the secret.
    """

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(20))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    # The person the credential was issued to (a name or an email). Four-eyes compares people: two
    # credentials issued to one person are one approver. Required for credentials that can approve quotes.
    issued_to: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    # After a roll the old secret keeps working until ``previous_valid_until`` (the grace period).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128))
    previous_valid_until: Mapped[datetime | None]

    __extra_table_args__ = (
        CheckConstraint(ROLE_CHECK, name="role"),
        CheckConstraint("role IS NOT NULL OR cardinality(scopes) > 0", name="role_or_scopes"),
    )


class OAuthClient(TenantMixin, Base):
    """An OAuth2 client (client credentials grant). ``client_id`` is public; only the secret's hash is kept.

    ``created_by_id`` names the credential (API key or client) that created it; it is not a foreign key
    because it may point at either table.
    """

    __tablename__ = "oauth_clients"

    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(20))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    # The person the credential was issued to (a name or an email). Four-eyes compares people: two
    # credentials issued to one person are one approver. Required for credentials that can approve quotes.
    issued_to: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]
    created_by_id: Mapped[uuid.UUID | None]

    __extra_table_args__ = (
        CheckConstraint(ROLE_CHECK, name="role"),
        CheckConstraint("role IS NOT NULL OR cardinality(scopes) > 0", name="role_or_scopes"),
    )
