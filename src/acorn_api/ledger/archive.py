"""The raw document archive: every SP-API payload fetched and every file imported, kept as evidence.

Documents are gzip-compressed, addressed by the SHA-256 of their uncompressed bytes and stored once per
account: archiving the same bytes twice returns the first row. Rows that a document produced (purchase
orders, shipments, ledger lines) point at it with ``raw_document_id`` so every figure can be traced back
to what Amazon actually sent.

Small documents (SP-API payloads) sit compressed in ``raw_documents.content``. Large files (report
imports, up to hundreds of MB) are streamed: compressed chunk by chunk into ``raw_document_chunks`` (one
gzip stream cut into ~1 MB rows), so neither the API process that archives an upload nor the worker that
reads it back ever holds the whole file in memory. ``metadata.storage == "chunks"`` marks such a document.

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
from typing import Any, BinaryIO, cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, undefer

from acorn_api.core.errors import NotFound
from acorn_api.core.models import Base, TenantMixin
from acorn_api.core.repository import AccountScopedRepository

COMPRESSION = "gzip"
# Level 6 is gzip's default: ~4x on SP-API JSON at ~100 MB/s, so archiving never paces a sync.
COMPRESSION_LEVEL = 6
#: Documents at least this big are hashed and compressed in a thread, off the event loop: a page of 100 purchase
#: orders (~170 KB) takes ~1 ms of gzip + SHA-256 (both release the GIL, so the loop goes on fetching and writing
#: meanwhile) against ~0.05 ms for the hop; a 1 MB report ~10 ms. Below it (acknowledgement and invoice bodies,
#: small pages) the hop would cost more than the work.
THREAD_THRESHOLD = 32 * 1024


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


class RawDocumentChunk(Base):
    """One piece of a large document's gzip stream; the pieces in ``seq`` order are the whole stream."""

    __tablename__ = "raw_document_chunks"

    account_id: Mapped[uuid.UUID]
    document_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        PrimaryKeyConstraint("account_id", "document_id", "seq"),
        ForeignKeyConstraint(
            ["account_id", "document_id"], ["raw_documents.account_id", "raw_documents.id"], ondelete="CASCADE"
        ),
        CheckConstraint("seq >= 0", name="seq"),
    )


CHUNK_BYTES = 1024 * 1024
STORAGE_CHUNKS = "chunks"


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


#: Built once: a Core insert (no ORM bulk-persistence pass per call) that every page of a sync runs.
_DOCUMENTS = cast(Table, RawDocument.__table__)
_INSERT_DOCUMENT = (
    insert(_DOCUMENTS).on_conflict_do_nothing(index_elements=["account_id", "sha256"]).returning(_DOCUMENTS.c.id)
)


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
        inserted = await session.scalar(
            _INSERT_DOCUMENT,
            {
                "id": uuid.uuid4(),
                "account_id": account_id,
                "sha256": digest,
                "source": source,
                "content_type": content_type,
                "compression": COMPRESSION,
                "size_bytes": len(content),
                "compressed_bytes": len(compressed),
                "content": compressed,
                "request_id": request_id,
                "fetched_at": fetched_at,
                "metadata": metadata or {},
            },
        )
        if inserted is not None:
            return Archived(inserted, digest, True)
        # the same bytes were archived before (or by a concurrent transaction): point at that copy
        winner = await session.scalar(
            select(RawDocument.id).where(RawDocument.account_id == account_id, RawDocument.sha256 == digest)
        )
        assert winner is not None
        return Archived(winner, digest, False)

    async def store_file(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        file: BinaryIO,
        *,
        sha256: str,
        size_bytes: int,
        source: str,
        fetched_at: datetime,
        content_type: str,
        metadata: dict[str, Any] | None = None,
    ) -> Archived:
        """Archive a file of known hash once per account, streaming it in compressed chunks.

        Reading and compressing run in a thread, one ``CHUNK_BYTES`` piece at a time: memory stays flat
        whatever the size, and the event loop keeps serving other requests meanwhile.
        """
        new_id = uuid.uuid4()
        inserted = await session.scalar(
            insert(RawDocument)
            .values(
                id=new_id,
                account_id=account_id,
                sha256=sha256,
                source=source,
                content_type=content_type,
                compression=COMPRESSION,
                size_bytes=size_bytes,
                compressed_bytes=0,
                content=b"",
                fetched_at=fetched_at,
                metadata_={**(metadata or {}), "storage": STORAGE_CHUNKS},
            )
            .on_conflict_do_nothing(index_elements=["account_id", "sha256"])
            .returning(RawDocument.id)
        )
        if inserted is None:
            winner = await session.scalar(
                select(RawDocument.id).where(RawDocument.account_id == account_id, RawDocument.sha256 == sha256)
            )
            assert winner is not None
            return Archived(winner, sha256, False)
        file.seek(0)
        compressor = _ChunkCompressor(file)
        seq = 0
        total = 0
        while True:
            piece = await asyncio.to_thread(compressor.next_piece)
            if piece is None:
                break
            if piece:
                await session.execute(
                    insert(RawDocumentChunk).values(account_id=account_id, document_id=new_id, seq=seq, data=piece)
                )
                seq += 1
                total += len(piece)
        await session.execute(
            update(RawDocument)
            .where(RawDocument.account_id == account_id, RawDocument.id == new_id)
            .values(compressed_bytes=total, metadata_={**(metadata or {}), "storage": STORAGE_CHUNKS, "chunks": seq})
        )
        return Archived(new_id, sha256, True)

    async def spool(self, session: AsyncSession, account_id: uuid.UUID, document_id: uuid.UUID, dest: BinaryIO) -> int:
        """Write the document's original bytes to ``dest``, one chunk at a time; returns the byte count."""
        document = await self.get(session, account_id, document_id)
        if document.metadata_.get("storage") != STORAGE_CHUNKS:
            full = await self.get_with_content(session, account_id, document_id)
            data = decompress(full)
            await asyncio.to_thread(dest.write, data)
            return len(data)
        decompressor = zlib.decompressobj(31)
        written = 0
        seq = 0
        while True:
            piece = await session.scalar(
                select(RawDocumentChunk.data).where(
                    RawDocumentChunk.account_id == account_id,
                    RawDocumentChunk.document_id == document_id,
                    RawDocumentChunk.seq == seq,
                )
            )
            if piece is None:
                break
            written += await asyncio.to_thread(_decompress_into, decompressor, piece, dest)
            seq += 1
        tail = decompressor.flush()
        dest.write(tail)
        return written + len(tail)


class _ChunkCompressor:
    """Reads a file and yields its gzip stream in pieces of about ``CHUNK_BYTES``."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip stream
        self.done = False

    def next_piece(self) -> bytes | None:
        """The next compressed piece (possibly empty), or ``None`` once everything is out."""
        if self.done:
            return None
        out = bytearray()
        while len(out) < CHUNK_BYTES:
            raw = self.file.read(CHUNK_BYTES)
            if not raw:
                out += self.compressor.flush()
                self.done = True
                break
            out += self.compressor.compress(raw)
        return bytes(out)


def _decompress_into(decompressor: Any, piece: bytes, dest: BinaryIO) -> int:
    data = decompressor.decompress(piece)
    dest.write(data)
    return len(data)


raw_documents = RawDocumentRepository()
