"""The raw document archive: every SP-API payload fetched and every file imported, kept as evidence.

Documents are gzip-compressed, addressed by the SHA-256 of their uncompressed bytes and stored once per
account: archiving the same bytes twice returns the first row. Rows that a document produced (purchase
orders, shipments, ledger lines) point at it with ``raw_document_id`` so every figure can be traced back
to what Amazon actually sent.

It lives in the ledger domain (DESIGN.md §3 and §5: "the raw document archive keeps every file imported
and every SP-API payload fetched ... as dispute evidence"): the connector writes into it, imports will
too, and disputes read from it. The vendor package depends on the ledger here, never the reverse.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, undefer

from acorn_api.core.errors import NotFound
from acorn_api.core.models import Base, TenantMixin
from acorn_api.core.repository import AccountScopedRepository

COMPRESSION = "gzip"
# Level 6 is gzip's default: ~4x on SP-API JSON at ~100 MB/s, so archiving never paces a sync.
COMPRESSION_LEVEL = 6
#: Documents at least this big are hashed and compressed in a thread, off the event loop (a 1 MB page takes
#: ~10 ms of gzip: long enough to stall every other request of the process; smaller ones cost less than the hop).
THREAD_THRESHOLD = 256 * 1024


class RawDocument(TenantMixin, Base):
    __tablename__ = "raw_documents"

    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(100))
    content_type: Mapped[str] = mapped_column(String(100))
    compression: Mapped[str] = mapped_column(String(10))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    compressed_bytes: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    request_id: Mapped[str | None] = mapped_column(String(128))
    fetched_at: Mapped[datetime]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")

    __extra_table_args__ = (
        UniqueConstraint("account_id", "sha256"),
        CheckConstraint("compression IN ('gzip')", name="compression"),
        CheckConstraint("size_bytes >= 0 AND compressed_bytes >= 0", name="sizes"),
        Index("ix_raw_documents_account_id_created_at", "account_id", "created_at", "id"),
    )


@dataclass(frozen=True, slots=True)
class Archived:
    id: uuid.UUID
    sha256: str
    created: bool


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def decompress(document: RawDocument) -> bytes:
    return gzip.decompress(document.content)


class DocumentTooLarge(ValueError):
    """A document decompresses to more than the caller allowed."""


def decompress_bytes(compressed: bytes, max_size: int) -> bytes:
    """Gunzip ``compressed``, refusing output beyond ``max_size`` bytes as soon as it passes it (CPU work: call
    it in a thread for anything big)."""
    inflate = zlib.decompressobj(wbits=31)
    out = inflate.decompress(compressed, max_size + 1)
    if len(out) > max_size:
        raise DocumentTooLarge(f"the document is larger than {max_size} bytes")
    return out + inflate.flush()


def _digest_and_compress(content: bytes) -> tuple[str, bytes]:
    return sha256_hex(content), gzip.compress(content, compresslevel=COMPRESSION_LEVEL, mtime=0)


class RawDocumentRepository(AccountScopedRepository[RawDocument]):
    model = RawDocument
    not_found_message = "No such raw document."

    async def get_with_content(
        self, session: AsyncSession, account_id: uuid.UUID, document_id: uuid.UUID
    ) -> RawDocument:
        row: RawDocument | None = await session.scalar(
            self.select(account_id).where(RawDocument.id == document_id).options(undefer(RawDocument.content))
        )
        if row is None:
            raise NotFound(self.not_found_message)
        return row

    async def store(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        content: bytes,
        *,
        source: str,
        fetched_at: datetime,
        content_type: str = "application/json",
        request_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Archived:
        """Archive ``content`` once per account; a second copy of the same bytes returns the first row."""
        if len(content) >= THREAD_THRESHOLD:
            digest, compressed = await asyncio.to_thread(_digest_and_compress, content)
        else:
            digest, compressed = _digest_and_compress(content)
        new_id = uuid.uuid4()
        inserted = await session.scalar(
            insert(RawDocument)
            .values(
                id=new_id,
                account_id=account_id,
                sha256=digest,
                source=source,
                content_type=content_type,
                compression=COMPRESSION,
                size_bytes=len(content),
                compressed_bytes=len(compressed),
                content=compressed,
                request_id=request_id,
                fetched_at=fetched_at,
                metadata_=metadata or {},
            )
            .on_conflict_do_nothing(index_elements=["account_id", "sha256"])
            .returning(RawDocument.id)
        )
        if inserted is not None:
            return Archived(inserted, digest, True)
        # the same bytes were archived before (or by a concurrent transaction): point at that copy
        winner = await session.scalar(
            select(RawDocument.id).where(RawDocument.account_id == account_id, RawDocument.sha256 == digest)
        )
        assert winner is not None
        return Archived(winner, digest, False)


raw_documents = RawDocumentRepository()
