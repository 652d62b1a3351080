"""Cursor pagination: ``?limit=&cursor=`` in, ``{data, next_cursor, has_more}`` out.

Pages are keyset pages over ``(created_at, id)`` (newest first), so page 1,000 costs what page 1 costs.
The cursor is opaque to clients: url-safe base64 of the last row's sort key.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from acorn_api.core.errors import invalid_field

T = TypeVar("T")
M = TypeVar("M")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size, 1-200")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="opaque cursor from the previous page's `next_cursor`")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


Pagination = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last")
    has_more: bool

    @classmethod
    def of(cls, page: Slice[M], convert: Callable[[M], T]) -> Page[T]:
        """The response for one keyset page of rows, each turned into its response model."""
        return cls(data=[convert(row) for row in page.rows], next_cursor=page.next_cursor, has_more=page.has_more)


@dataclass(frozen=True)
class Keyset:
    created_at: datetime
    id: uuid.UUID


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = orjson.dumps({"t": created_at.isoformat(), "i": str(row_id)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Keyset:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data: dict[str, Any] = orjson.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return Keyset(created_at, uuid.UUID(data["i"]))
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise invalid_field(["query", "cursor"], "not a cursor this API issued", "cursor_invalid") from exc


@dataclass(frozen=True)
class Slice(Generic[M]):
    rows: list[M]
    next_cursor: str | None
    has_more: bool


async def keyset_page(
    session: AsyncSession,
    stmt: Select[M],
    params: PageParams,
    *,
    created_at: InstrumentedAttribute[datetime],
    id_: InstrumentedAttribute[uuid.UUID],
) -> Slice[M]:
    """Run ``stmt`` as one newest-first keyset page."""
    if params.cursor:
        key = decode_cursor(params.cursor)
        stmt = stmt.where(tuple_(created_at, id_) < tuple_(key.created_at, key.id))
    stmt = stmt.order_by(created_at.desc(), id_.desc()).limit(params.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, created_at.key), getattr(last, id_.key))
    return Slice(rows=rows, next_cursor=next_cursor, has_more=has_more)
