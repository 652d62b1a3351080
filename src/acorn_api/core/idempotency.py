"""``Idempotency-Key`` for POSTs that create things.

Same key + same request → the stored response, byte for byte. Same key + different request → 422.
Concurrent requests with one key are serialised by a transaction-scoped advisory lock on
(account, key): the second waits for the first to commit, then finds its stored response. The record is
written in the same transaction as the effect, so either both exist or neither does.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Header, Request
from pydantic import BaseModel
from sqlalchemy import String, UniqueConstraint, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from acorn_api.core.db import Session
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import AcornError, JSONResponse, Unprocessable, field_error
from acorn_api.core.models import Base, TenantMixin
from acorn_api.core.time import utcnow

OutT = TypeVar("OutT", bound=BaseModel)
HASH_CHUNK_BYTES = 1 << 20


class IdempotencyRecord(TenantMixin, Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response_body: Mapped[Any] = mapped_column(JSONB)
    expires_at: Mapped[datetime]

    __extra_table_args__ = (UniqueConstraint("account_id", "key"),)


class IdempotentReplay(AcornError):
    """Not an error: carries the stored response of an earlier request with the same key."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__("replay")
        self.status_code = status_code
        self.body = body


async def handle_replay(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdempotentReplay)
    return JSONResponse(exc.body, status_code=exc.status_code, headers={"Idempotency-Replayed": "true"})


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe key: the same key with the same body returns the first response (kept 24 h).",
    ),
]


class Idempotency:
    def __init__(
        self, request: Request, session: AsyncSession, key: str | None, ttl: timedelta, status_code: int
    ) -> None:
        self.request = request
        self.session = session
        self.key = key
        self.ttl = ttl
        self.status_code = status_code

    async def _request_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.request.method.encode())
        digest.update(b"\0" + self.request.url.path.encode() + b"\0")
        try:
            body = await self.request.body()
        except RuntimeError:  # a multipart form was already parsed from the stream: hash its parts instead
            await self._hash_form(digest)
            return digest.hexdigest()
        try:  # canonical JSON, so key order and whitespace do not make a "different" request
            digest.update(orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS))
        except orjson.JSONDecodeError:
            digest.update(body)
        return digest.hexdigest()

    async def _hash_form(self, digest: Any) -> None:
        form = await self.request.form()
        for name, value in sorted(form.multi_items(), key=lambda item: item[0]):
            digest.update(name.encode() + b"\0")
            if isinstance(value, str):
                digest.update(value.encode())
            else:
                # The route has usually read the upload already: hash it from its start, in chunks, and leave
                # it where it was, so the hash covers the real content whoever read it first.
                position = value.file.tell()
                await value.seek(0)
                digest.update((value.filename or "").encode() + b"\0")
                while chunk := await value.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
                await value.seek(position)
            digest.update(b"\0")

    async def run(self, account_id: uuid.UUID, out: type[OutT], create: Callable[[], Awaitable[Any]]) -> OutT:
        """Run ``create`` once per key; validate its result into ``out`` and store that as the response."""
        if self.key is None:
            return out.model_validate(await create())
        request_hash = await self._request_hash()
        lock_id = int.from_bytes(hashlib.sha256(f"{account_id}:{self.key}".encode()).digest()[:8], "big", signed=True)
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        now = utcnow()
        stored = await self.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.account_id == account_id,
                IdempotencyRecord.key == self.key,
                IdempotencyRecord.expires_at > now,
            )
        )
        if stored is not None:
            if not hmac.compare_digest(stored.request_hash, request_hash):
                raise Unprocessable(
                    "This Idempotency-Key was already used with a different request.",
                    code="idempotency_key_reused",
                    errors=[field_error(["header", "Idempotency-Key"], "already used with another body")],
                )
            raise IdempotentReplay(stored.status_code, stored.response_body)
        result = out.model_validate(await create())
        await self.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == self.key
            )
        )
        self.session.add(
            IdempotencyRecord(
                account_id=account_id,
                key=self.key,
                request_hash=request_hash,
                status_code=self.status_code,
                response_body=result.model_dump(mode="json"),
                expires_at=now + self.ttl,
            )
        )
        await self.session.flush()
        return result


async def idempotency(
    request: Request, session: Session, settings: AppSettings, key: IdempotencyKeyHeader = None
) -> Idempotency:
    route = request.scope.get("route")
    status_code = getattr(route, "status_code", None) or 200
    return Idempotency(request, session, key, timedelta(hours=settings.idempotency_ttl_hours), status_code)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


async def purge_expired(session: AsyncSession) -> int:
    """Delete records past their time; run by a worker cron."""
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < func.now()))
    return int(getattr(result, "rowcount", 0) or 0)
