"""acorn_uuid7(): time-ordered (RFC 9562 version 7) ids for rows written in bulk by SQL

Ledger entries got random (version 4) ids, so every index keyed by an entry id (the ledger's primary key, the
journal's one-line-per-entry key) took each new entry on a random leaf page: at a million invoices the journal
of one 10,000-line import spent ~0.3-0.5 s in index I/O. Version 7 ids start with the time in milliseconds, so new
entries land together at the right edge of those indexes. PostgreSQL 15 has no uuidv7() (18 has), hence this.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 19:35:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # 48 bits of Unix time in ms over the first 6 bytes of a random (v4) uuid; bits 52 and 53 turn the version
    # nibble 0100 into 0111; the variant bits stay those of gen_random_uuid()
    op.execute(
        """
        CREATE FUNCTION acorn_uuid7() RETURNS uuid
        LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
            SELECT encode(
                set_bit(set_bit(
                    overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                    52, 1), 53, 1),
                'hex')::uuid
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION acorn_uuid7()")
