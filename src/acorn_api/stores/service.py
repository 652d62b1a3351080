"""The rules for stores. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.core.errors import Conflict, field_error, invalid_field
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.regions import MARKETPLACE_REGION, Marketplace, Region
from acorn_api.core.unique import flush_unique
from acorn_api.core.versioning import require_version
from acorn_api.stores.models import Store
from acorn_api.stores.repository import stores
from acorn_api.stores.schemas import StoreCreate, StoreUpdate

AUDITED_FIELDS = (
    "code",
    "name",
    "region",
    "marketplace",
    "country",
    "currency",
    "timezone",
    "vendor_codes",
    "status",
    "metadata_",
)


CODE_CONSTRAINT = "uq_stores_account_id_code"


def _code_taken(code: str) -> Conflict:
    return Conflict(
        f"A store with code {code!r} already exists in this account.",
        code="store_code_taken",
        errors=[field_error(["body", "code"], "already used by another store", "unique")],
    )


async def create(session: AsyncSession, caller: Caller, data: StoreCreate) -> Store:
    """Create a store; its code is unique within the account."""
    if await stores.code_taken(session, caller.account_id, data.code):
        raise _code_taken(data.code)
    store = stores.add(
        session,
        caller.account_id,
        Store(
            code=data.code,
            name=data.name,
            region=data.region.value,
            marketplace=data.marketplace.value,
            country=data.country,
            currency=data.currency,
            timezone=data.timezone,
            vendor_codes=list(data.vendor_codes),
            metadata_=dict(data.metadata),
        ),
    )
    await flush_unique(session, {CODE_CONSTRAINT: lambda: _code_taken(data.code)})
    await session.refresh(store)
    audit.record(session, caller, "store.created", "store", store.id, after=audit.snapshot(store, AUDITED_FIELDS))
    return store


async def get(session: AsyncSession, caller: Caller, store_id: uuid.UUID) -> Store:
    return await stores.get(session, caller.account_id, store_id)


async def get_row(session: AsyncSession, caller: Caller, store_id: uuid.UUID) -> Mapping[str, Any]:
    """The store for a read-only response (a row mapping, not an entity)."""
    return await stores.get_row(session, caller.account_id, store_id)


async def list_page(
    session: AsyncSession,
    caller: Caller,
    params: PageParams,
    *,
    status: str | None,
    region: str | None,
    marketplace: str | None,
    vendor_code: str | None,
    code: str | None,
) -> Slice[Store]:
    stmt = stores.filtered(
        caller.account_id, status=status, region=region, marketplace=marketplace, vendor_code=vendor_code, code=code
    )
    return await stores.page(session, stmt, params)


async def update(
    session: AsyncSession, caller: Caller, store_id: uuid.UUID, data: StoreUpdate, *, if_match: int | None
) -> Store:
    """Apply the fields present; the expected version comes from the body or ``If-Match``."""
    store = await stores.get_for_update(session, caller.account_id, store_id)
    require_version("store", store.version, version=data.version, if_match=if_match)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    region = Region(changes.get("region", store.region))
    marketplace = Marketplace(changes.get("marketplace", store.marketplace))
    if MARKETPLACE_REGION[marketplace] != region:
        field = "marketplace" if "marketplace" in changes else "region"
        raise invalid_field(
            ["body", field],
            f"marketplace {marketplace.value} is in region {MARKETPLACE_REGION[marketplace].value}, not {region.value}",
        )
    if "code" in changes and await stores.code_taken(session, caller.account_id, changes["code"], except_id=store.id):
        raise _code_taken(changes["code"])
    if "metadata" in changes:
        changes["metadata_"] = changes.pop("metadata")
    before = audit.snapshot(store, AUDITED_FIELDS)
    for name, value in changes.items():
        setattr(store, name, value.value if hasattr(value, "value") else value)
    if changes:
        code = store.code  # read now: a failed savepoint expires the object
        await flush_unique(session, {CODE_CONSTRAINT: lambda: _code_taken(code)})
        await session.refresh(store)
        after = audit.snapshot(store, AUDITED_FIELDS)
        audit.record(session, caller, "store.updated", "store", store.id, before=before, after=after)
    return store


async def delete(session: AsyncSession, caller: Caller, store_id: uuid.UUID) -> Store | None:
    """Delete the store, or archive it when other data refers to it. Returns the archived store, if so."""
    store = await stores.get_for_update(session, caller.account_id, store_id)
    before = audit.snapshot(store, AUDITED_FIELDS)
    if await stores.try_delete(session, caller.account_id, store_id):
        session.expunge(store)
        audit.record(session, caller, "store.deleted", "store", store_id, before=before)
        return None
    store.status = "archived"
    await session.flush()
    await session.refresh(store)
    audit.record(
        session, caller, "store.archived", "store", store_id, before=before, after=audit.snapshot(store, AUDITED_FIELDS)
    )
    return store
