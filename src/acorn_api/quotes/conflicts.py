"""Channel conflicts: stores of one marketplace whose effective prices for an item differ too much, and
approved quotes of one scope whose periods overlap.

Overlaps cannot be created any more (the ``ex_quotes_approved_no_overlap`` exclusion constraint refuses
them, and approval trims older quotes first); the report still looks for them so that data loaded before
the constraint existed, or restored around it, is found.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.regions import MARKETPLACE_REGION, Marketplace
from acorn_api.quotes.models import Quote, ScopeType
from acorn_api.quotes.repository import quotes
from acorn_api.quotes.schemas import ConflictReport, ConflictStore, OverlapConflict, PriceConflict

RANK = {ScopeType.store.value: 0, ScopeType.marketplace.value: 1, ScopeType.region.value: 2}


def spread_pct(low: Decimal, high: Decimal) -> Decimal:
    return ((high - low) * 100 / low).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def exceeds(low: Decimal, high: Decimal, tolerance_pct: Decimal) -> bool:
    return high > low * (1 + tolerance_pct / 100)


def _marketplaces_of(quote: Quote, store_marketplace: str | None) -> list[str]:
    if quote.scope_type == ScopeType.store.value:
        return [store_marketplace] if store_marketplace else []
    if quote.scope_type == ScopeType.marketplace.value:
        return [quote.marketplace] if quote.marketplace else []
    return [m.value for m, r in MARKETPLACE_REGION.items() if r.value == quote.region]


def _applies(quote: Quote, row: Any) -> bool:
    """Would ``quote``, once approved, be the price of the store in ``row``?"""
    if quote.scope_type == ScopeType.store.value:
        hit = row.store_id == quote.store_id
    elif quote.scope_type == ScopeType.marketplace.value:
        hit = row.marketplace == quote.marketplace
    else:
        hit = row.region == quote.region
    return hit and (row.scope_type is None or RANK[row.scope_type] >= RANK[quote.scope_type])


async def created_by(
    session: AsyncSession, quote: Quote, tolerance_pct: Decimal, *, store_marketplace: str | None
) -> list[PriceConflict]:
    """The price-spread conflicts that approving ``quote`` would create at its ``effective_from``."""
    rows = await quotes.store_prices(
        session,
        quote.account_id,
        quote.item_id,
        quote.currency,
        quote.effective_from,
        marketplaces=_marketplaces_of(quote, store_marketplace),
    )
    groups: dict[str, list[ConflictStore]] = defaultdict(list)
    for row in rows:
        if _applies(quote, row):
            groups[row.marketplace].append(
                ConflictStore(
                    store_id=row.store_id,
                    store_code=row.store_code,
                    cost_price=quote.cost_price,
                    source="this_quote",
                    quote_id=quote.id,
                )
            )
        elif row.cost_price is not None:
            groups[row.marketplace].append(
                ConflictStore(
                    store_id=row.store_id,
                    store_code=row.store_code,
                    cost_price=row.cost_price,
                    source=ScopeType(row.scope_type),
                    quote_id=row.quote_id,
                )
            )
    found = []
    for marketplace, stores in sorted(groups.items()):
        if not any(s.source == "this_quote" for s in stores):
            continue
        low, high = min(s.cost_price for s in stores), max(s.cost_price for s in stores)
        if exceeds(low, high, tolerance_pct):
            found.append(
                PriceConflict(
                    item_id=quote.item_id,
                    marketplace=Marketplace(marketplace),
                    currency=quote.currency,
                    min_price=low,
                    max_price=high,
                    spread_pct=spread_pct(low, high),
                    stores=sorted(stores, key=lambda s: (s.cost_price, s.store_code)),
                )
            )
    return found


async def report(
    session: AsyncSession,
    account_id: uuid.UUID,
    at: datetime,
    tolerance_pct: Decimal,
    *,
    item_id: uuid.UUID | None,
    marketplace: str | None,
    limit: int,
) -> ConflictReport:
    """Price spreads beyond the tolerance at ``at``, plus any overlapping approved periods."""
    rows = await quotes.price_conflicts(
        session, account_id, at, tolerance_pct, item_id=item_id, marketplace=marketplace, limit=limit + 1
    )
    price_conflicts = [
        PriceConflict(
            item_id=r.item_id,
            marketplace=Marketplace(r.marketplace),
            currency=r.currency,
            min_price=r.min_price,
            max_price=r.max_price,
            spread_pct=spread_pct(r.min_price, r.max_price),
            stores=[
                ConflictStore(
                    store_id=s["store_id"],
                    store_code=s["store_code"],
                    cost_price=Decimal(s["cost_price"]),
                    source=ScopeType(s["source"]),
                    quote_id=s["quote_id"],
                )
                for s in r.stores
            ],
        )
        for r in rows[:limit]
    ]
    overlap_rows = await quotes.overlaps(session, account_id, item_id=item_id, limit=limit)
    overlaps = [
        OverlapConflict(
            item_id=r.item_id,
            scope_key=r.scope_key,
            quote_ids=[r.first_id, r.second_id],
            detail="two approved quotes of one item and scope cover the same time; withdraw the price of one by "
            "approving a replacement, and tell support (new data cannot overlap)",
        )
        for r in overlap_rows
    ]
    return ConflictReport(
        at=at,
        tolerance_pct=tolerance_pct,
        price_conflicts=price_conflicts,
        overlaps=overlaps,
        truncated=len(rows) > limit,
    )
