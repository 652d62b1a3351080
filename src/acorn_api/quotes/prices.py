"""Effective prices: which approved quote prices an item for a store at an instant, and the history."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller
from acorn_api.catalog.repository import items
from acorn_api.core.errors import NotFound, Unprocessable, field_error
from acorn_api.core.regions import Marketplace, Region
from acorn_api.quotes.models import QuoteStatus, ScopeType
from acorn_api.quotes.repository import quotes, store_scope_keys
from acorn_api.quotes.schemas import EffectivePrice, PriceHistory, PricePeriod, ScopeHistory
from acorn_api.stores.repository import stores


def _one_item(item_id: uuid.UUID | None, asin: str | None) -> None:
    if (item_id is None) == (asin is None):
        raise Unprocessable(
            "Give exactly one of item_id and asin.",
            errors=[field_error(["query", "item_id"], "give exactly one of item_id and asin", "missing")],
        )


async def effective(
    session: AsyncSession,
    caller: Caller,
    *,
    item_id: uuid.UUID | None,
    asin: str | None,
    store_id: uuid.UUID,
    at: datetime,
) -> EffectivePrice:
    """The store's own approved quote in force at ``at``, else its marketplace's, else its region's."""
    _one_item(item_id, asin)
    asin = asin.strip().upper() if asin is not None else None
    row = await quotes.effective_for_store(
        session, caller.account_id, store_id=store_id, item_id=item_id, asin=asin, at=at
    )
    if row is None:  # which one is missing? (the slow path only runs for a 404)
        await stores.get(session, caller.account_id, store_id)
        if item_id is not None:
            await items.get(session, caller.account_id, item_id)
        raise NotFound(f"No item with ASIN {asin!r} in this account.")
    if row.quote_id is None:
        raise NotFound(
            f"No approved quote prices item {row.asin} for store {row.store_code} at {at.isoformat()}.",
            code="no_effective_price",
        )
    return EffectivePrice(
        item_id=row.item_id,
        asin=row.asin,
        store_id=row.store_id,
        at=at,
        cost_price=row.cost_price,
        currency=row.currency,
        list_price=row.list_price,
        min_order_quantity=row.min_order_quantity,
        source=ScopeType(row.scope_type),
        quote_id=row.quote_id,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
    )


async def history(
    session: AsyncSession, caller: Caller, item_id: uuid.UUID, *, store_id: uuid.UUID | None
) -> PriceHistory:
    """Every approved price of the item over time, per scope (only the scopes that can price the store, if given)."""
    await items.get(session, caller.account_id, item_id)
    keys = None
    if store_id is not None:
        keys = store_scope_keys(await stores.get(session, caller.account_id, store_id))
    scopes: OrderedDict[str, ScopeHistory] = OrderedDict()
    for q in await quotes.history(session, caller.account_id, item_id, scope_keys=keys):
        scope = scopes.get(q.scope_key)
        if scope is None:
            scope = scopes[q.scope_key] = ScopeHistory(
                scope_type=ScopeType(q.scope_type),
                scope_key=q.scope_key,
                store_id=q.store_id,
                region=Region(q.region) if q.region else None,
                marketplace=Marketplace(q.marketplace) if q.marketplace else None,
                currency=q.currency,
                periods=[],
            )
        scope.periods.append(
            PricePeriod(
                quote_id=q.id,
                cost_price=q.cost_price,
                list_price=q.list_price,
                effective_from=q.effective_from,
                effective_to=q.effective_to,
                status=QuoteStatus(q.status),
                approved_by=q.decided_by,
                approved_at=q.decided_at,
            )
        )
    return PriceHistory(item_id=item_id, scopes=list(scopes.values()))
