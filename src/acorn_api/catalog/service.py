"""The rules for items. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.catalog.models import Item
from acorn_api.catalog.repository import items
from acorn_api.catalog.schemas import ItemCreate, ItemUpdate, UnitOfMeasure, check_case_size
from acorn_api.core.errors import Conflict, field_error, invalid_field
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.unique import flush_unique
from acorn_api.core.versioning import require_version

AUDITED_FIELDS = (
    "asin",
    "vendor_sku",
    "ean",
    "upc",
    "title",
    "brand",
    "unit_of_measure",
    "case_size",
    "status",
)
UNIQUE_FIELDS = ("asin", "vendor_sku")


def _taken(field: str, value: str) -> Conflict:
    return Conflict(
        f"An item with {field} {value!r} already exists in this account.",
        code=f"item_{field}_taken",
        errors=[field_error(["body", field], "already used by another item", "unique")],
        field=field,
    )


def _flush_unique(session: AsyncSession, values: dict[str, Any]) -> Awaitable[None]:
    """Flush, turning a unique violation that slipped past the pre-check (a race) into the same 409."""
    return flush_unique(
        session,
        {f"uq_items_account_id_{field}": partial(_taken, field, str(values.get(field))) for field in UNIQUE_FIELDS},
    )


async def create(session: AsyncSession, caller: Caller, data: ItemCreate) -> Item:
    """Create an item; ASIN and vendor SKU are each unique within the account."""
    for field in UNIQUE_FIELDS:
        value = getattr(data, field)
        if await items.taken(session, caller.account_id, field, value):
            raise _taken(field, value)
    item = items.add(
        session,
        caller.account_id,
        Item(
            asin=data.asin,
            vendor_sku=data.vendor_sku,
            ean=data.ean,
            upc=data.upc,
            title=data.title,
            brand=data.brand,
            unit_of_measure=data.unit_of_measure.value,
            case_size=data.case_size,
            status=data.status.value,
        ),
    )
    await _flush_unique(session, data.model_dump())
    await session.refresh(item)
    audit.record(session, caller, "item.created", "item", item.id, after=audit.snapshot(item, AUDITED_FIELDS))
    return item


async def get(session: AsyncSession, caller: Caller, item_id: uuid.UUID) -> Item:
    return await items.get(session, caller.account_id, item_id)


async def list_page(
    session: AsyncSession,
    caller: Caller,
    params: PageParams,
    *,
    asin: str | None,
    vendor_sku: str | None,
    status: str | None,
    q: str | None,
) -> Slice[Item]:
    stmt = items.filtered(caller.account_id, asin=asin, vendor_sku=vendor_sku, status=status, q=q)
    return await items.page(session, stmt, params)


async def update(
    session: AsyncSession, caller: Caller, item_id: uuid.UUID, data: ItemUpdate, *, if_match: int | None
) -> Item:
    """Apply the fields present; the expected version comes from the body or ``If-Match``."""
    item = await items.get_for_update(session, caller.account_id, item_id)
    require_version("item", item.version, version=data.version, if_match=if_match)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    unit = UnitOfMeasure(changes.get("unit_of_measure", item.unit_of_measure))
    case_size = changes.get("case_size", item.case_size)
    if "unit_of_measure" in changes and unit is UnitOfMeasure.eaches and "case_size" not in changes:
        case_size = changes["case_size"] = None  # switching to Eaches drops the case size
    try:
        check_case_size(unit, case_size)
    except ValueError as exc:
        raise invalid_field(["body", "case_size"], str(exc)) from exc
    for field in UNIQUE_FIELDS:
        if field in changes and await items.taken(session, caller.account_id, field, changes[field], except_id=item.id):
            raise _taken(field, changes[field])
    before = audit.snapshot(item, AUDITED_FIELDS)
    for name, value in changes.items():
        setattr(item, name, value.value if hasattr(value, "value") else value)
    if changes:
        await _flush_unique(session, changes)
        await session.refresh(item)
        after = audit.snapshot(item, AUDITED_FIELDS)
        audit.record(session, caller, "item.updated", "item", item.id, before=before, after=after)
    return item


async def delete(session: AsyncSession, caller: Caller, item_id: uuid.UUID) -> None:
    """Delete an item that no quote refers to; otherwise 409 (discontinue it instead)."""
    item = await items.get_for_update(session, caller.account_id, item_id)
    before = audit.snapshot(item, AUDITED_FIELDS)
    if not await items.try_delete(session, caller.account_id, item_id):
        raise Conflict(
            "Quotes refer to this item, so it cannot be deleted; set its status to `discontinued` instead.",
            code="item_in_use",
        )
    session.expunge(item)
    audit.record(session, caller, "item.deleted", "item", item_id, before=before)
