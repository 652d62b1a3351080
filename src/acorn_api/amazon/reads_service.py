"""Reads of what the connector stored: purchase orders, shipments, archived raw documents."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller
from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem, Shipment
from acorn_api.amazon.repository import purchase_orders, shipments
from acorn_api.core.errors import NotFound
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.ledger.archive import RawDocument, decompress_bytes, raw_documents
from acorn_api.settings import Settings


async def list_purchase_orders(
    session: AsyncSession,
    caller: Caller,
    page: PageParams,
    *,
    store_id: uuid.UUID | None,
    state: str | None,
    ordered_after: datetime | None,
    ordered_before: datetime | None,
    asin: str | None,
    vendor_code: str | None,
) -> Slice[PurchaseOrder]:
    stmt = purchase_orders.filtered(
        caller.account_id,
        store_id=store_id,
        state=state,
        ordered_after=ordered_after,
        ordered_before=ordered_before,
        asin=asin,
        vendor_code=vendor_code,
    )
    return await purchase_orders.page(session, stmt, page)


async def get_purchase_order(
    session: AsyncSession, caller: Caller, number: str
) -> tuple[PurchaseOrder, list[PurchaseOrderItem]]:
    po = await purchase_orders.by_number(session, caller.account_id, number)
    if po is None:
        raise NotFound(f"No purchase order {number!r} in this account.")
    return po, await purchase_orders.items(session, caller.account_id, po.id)


async def list_shipments(
    session: AsyncSession,
    caller: Caller,
    page: PageParams,
    *,
    purchase_order_number: str | None,
    status: str | None,
    vendor_code: str | None,
) -> Slice[Shipment]:
    stmt = shipments.filtered(
        caller.account_id, purchase_order_number=purchase_order_number, status=status, vendor_code=vendor_code
    )
    return await shipments.page(session, stmt, page)


def _decode(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode("utf-8", errors="replace")


async def get_raw_document(
    session: AsyncSession, settings: Settings, caller: Caller, document_id: uuid.UUID
) -> tuple[RawDocument, Any, bool]:
    """The document's metadata and its payload (parsed when it is JSON), unless it is larger than
    ``raw_document_max_inline_bytes`` (then ``None`` and ``False``). Decompressing and parsing run in a thread,
    so a big document never stalls the event loop."""
    document = await raw_documents.get(session, caller.account_id, document_id)
    if document.size_bytes > settings.raw_document_max_inline_bytes:
        return document, None, False
    document = await raw_documents.get_with_content(session, caller.account_id, document_id)
    compressed = document.content

    def load() -> Any:
        return _decode(decompress_bytes(compressed, settings.raw_document_max_inline_bytes))

    return document, await asyncio.to_thread(load), True
