"""Every query on quotes, their events and policies — always scoped to one account."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, case, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.catalog.models import Item
from acorn_api.core.repository import AccountScopedRepository
from acorn_api.quotes.models import PRICED_STATUSES, Quote, QuoteEvent, QuotePolicy, QuoteStatus
from acorn_api.stores.models import Store

SCOPE_RANK = case({"store": 0, "marketplace": 1}, value=Quote.scope_type, else_=2)


def store_scope_keys(store: Store) -> list[str]:
    """The scope keys a store's price may come from, most specific first."""
    return [f"store:{store.id}", f"marketplace:{store.marketplace}", f"region:{store.region}:{store.currency}"]


def _in_force(at: datetime) -> Any:
    return (
        Quote.status.in_(PRICED_STATUSES),
        Quote.effective_from <= at,
        or_(Quote.effective_to.is_(None), Quote.effective_to > at),
    )


class QuoteRepository(AccountScopedRepository[Quote]):
    model = Quote
    not_found_message = "No such quote."

    async def add_many(
        self, session: AsyncSession, account_id: uuid.UUID, rows: Sequence[dict[str, Any]]
    ) -> list[Quote]:
        """Insert many quotes with a few batched ``INSERT … RETURNING`` statements; returns them fully loaded."""
        if not rows:
            return []
        stmt = insert(Quote).returning(Quote, sort_by_parameter_order=True)
        result = await session.scalars(stmt, [{**row, "account_id": account_id} for row in rows])
        return list(result.all())

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        item_id: uuid.UUID | None = None,
        store_id: uuid.UUID | None = None,
        status: str | None = None,
        scope_type: str | None = None,
        region: str | None = None,
        marketplace: str | None = None,
    ) -> Select[Quote]:
        return self.select_matching(
            account_id,
            item_id=item_id,
            store_id=store_id,
            status=status,
            scope_type=scope_type,
            region=region,
            marketplace=marketplace,
        )

    async def resolve(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        item_id: uuid.UUID,
        scope_keys: Sequence[str],
        currency: str,
        at: datetime,
    ) -> Quote | None:
        """The approved quote in force at ``at`` from the most specific of ``scope_keys``."""
        stmt = (
            self.select(account_id)
            .where(
                Quote.item_id == item_id,
                Quote.scope_key.in_(list(scope_keys)),
                Quote.currency == currency,
                *_in_force(at),
            )
            .order_by(SCOPE_RANK)
            .limit(1)
        )
        quote: Quote | None = await session.scalar(stmt)
        return quote

    async def effective_for_store(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        *,
        store_id: uuid.UUID,
        item_id: uuid.UUID | None,
        asin: str | None,
        at: datetime,
    ) -> Row[Any] | None:
        """Item, store and the quote in force, in one round trip (the hot path of price lookups).

        No row: the item or the store is not the account's. A row with a null ``quote_id``: no price in force.
        """
        item_filter = "i.id = :item_id" if item_id is not None else "i.asin = :asin"
        sql = text(
            f"""
            SELECT i.id AS item_id, i.asin, s.id AS store_id, s.code AS store_code,
                   w.id AS quote_id, w.cost_price, w.currency, w.list_price, w.min_order_quantity, w.scope_type,
                   w.effective_from, w.effective_to
            FROM items i
            JOIN stores s ON s.account_id = i.account_id AND s.id = :store_id
            LEFT JOIN LATERAL (
                SELECT q.id, q.cost_price, q.currency, q.list_price, q.min_order_quantity, q.scope_type,
                       q.effective_from, q.effective_to
                FROM quotes q
                WHERE q.account_id = i.account_id AND q.item_id = i.id AND q.currency = s.currency
                  AND q.scope_key IN ('store:' || s.id::text, 'marketplace:' || s.marketplace,
                                      'region:' || s.region || ':' || s.currency)
                  AND q.status IN ('approved', 'expired')
                  AND q.effective_from <= :at AND (q.effective_to IS NULL OR q.effective_to > :at)
                ORDER BY CASE q.scope_type WHEN 'store' THEN 0 WHEN 'marketplace' THEN 1 ELSE 2 END
                LIMIT 1
            ) w ON true
            WHERE i.account_id = :account_id AND {item_filter}
            """  # noqa: S608 - item_filter is one of two fixed strings
        )
        params: dict[str, Any] = {"account_id": account_id, "store_id": store_id, "at": at}
        if item_id is not None:
            params["item_id"] = item_id
        else:
            params["asin"] = asin
        return (await session.execute(sql, params)).first()

    async def lock_scope(
        self, session: AsyncSession, account_id: uuid.UUID, item_id: uuid.UUID, scope_key: str
    ) -> None:
        """Serialise approvals for one item and scope until the transaction ends."""
        digest = hashlib.sha256(f"quotes:{account_id}:{item_id}:{scope_key}".encode()).digest()
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": int.from_bytes(digest[:8], "big", signed=True)}
        )

    async def overlapping_approved_for_update(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        item_id: uuid.UUID,
        scope_key: str,
        start: datetime,
        end: datetime | None,
    ) -> list[Quote]:
        stmt = (
            self.select(account_id)
            .where(
                Quote.item_id == item_id,
                Quote.scope_key == scope_key,
                Quote.status == QuoteStatus.approved.value,
                or_(Quote.effective_to.is_(None), Quote.effective_to > start),
            )
            .order_by(Quote.effective_from)
            .with_for_update()
        )
        if end is not None:
            stmt = stmt.where(Quote.effective_from < end)
        return list((await session.scalars(stmt)).all())

    async def store_prices(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        item_id: uuid.UUID,
        currency: str,
        at: datetime,
        *,
        marketplaces: Sequence[str],
    ) -> list[Row[Any]]:
        """Each active store of the marketplaces (in ``currency``) with the price in force for the item, if any."""
        sql = text(
            """
            SELECT s.id AS store_id, s.code AS store_code, s.marketplace, s.region,
                   w.scope_type, w.cost_price, w.id AS quote_id
            FROM stores s
            LEFT JOIN LATERAL (
                SELECT q.scope_type, q.cost_price, q.id
                FROM quotes q
                WHERE q.account_id = s.account_id AND q.item_id = :item_id AND q.currency = s.currency
                  AND q.scope_key IN ('store:' || s.id::text, 'marketplace:' || s.marketplace,
                                      'region:' || s.region || ':' || s.currency)
                  AND q.status IN ('approved', 'expired')
                  AND q.effective_from <= :at AND (q.effective_to IS NULL OR q.effective_to > :at)
                ORDER BY CASE q.scope_type WHEN 'store' THEN 0 WHEN 'marketplace' THEN 1 ELSE 2 END
                LIMIT 1
            ) w ON true
            WHERE s.account_id = :account_id AND s.status = 'active' AND s.currency = :currency
              AND s.marketplace = ANY(:marketplaces)
            ORDER BY s.marketplace, s.code
            """
        )
        result = await session.execute(
            sql,
            {
                "account_id": account_id,
                "item_id": item_id,
                "currency": currency,
                "at": at,
                "marketplaces": list(marketplaces),
            },
        )
        return list(result.all())

    async def price_conflicts(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        at: datetime,
        tolerance_pct: Decimal,
        *,
        item_id: uuid.UUID | None,
        marketplace: str | None,
        limit: int,
    ) -> list[Row[Any]]:
        """(item, marketplace, currency) groups whose stores' effective prices spread beyond the tolerance."""
        sql = text(
            """
            WITH eff AS (
                SELECT DISTINCT ON (s.id, q.item_id)
                       s.id AS store_id, s.code AS store_code, s.marketplace, s.currency, q.item_id,
                       q.cost_price, q.scope_type, q.id AS quote_id
                FROM stores s
                JOIN quotes q
                  ON q.account_id = s.account_id AND q.currency = s.currency
                 AND q.scope_key IN ('store:' || s.id::text, 'marketplace:' || s.marketplace,
                                     'region:' || s.region || ':' || s.currency)
                WHERE s.account_id = :account_id AND s.status = 'active'
                  AND (CAST(:marketplace AS text) IS NULL OR s.marketplace = :marketplace)
                  AND (CAST(:item_id AS uuid) IS NULL OR q.item_id = :item_id)
                  AND q.status IN ('approved', 'expired')
                  AND q.effective_from <= :at AND (q.effective_to IS NULL OR q.effective_to > :at)
                ORDER BY s.id, q.item_id, CASE q.scope_type WHEN 'store' THEN 0 WHEN 'marketplace' THEN 1 ELSE 2 END
            )
            SELECT item_id, marketplace, currency, min(cost_price) AS min_price, max(cost_price) AS max_price,
                   jsonb_agg(jsonb_build_object(
                       'store_id', store_id, 'store_code', store_code, 'cost_price', cost_price::text,
                       'source', scope_type, 'quote_id', quote_id) ORDER BY cost_price, store_code) AS stores
            FROM eff
            GROUP BY item_id, marketplace, currency
            HAVING max(cost_price) > min(cost_price) * (1 + :tolerance / 100.0)
            ORDER BY item_id, marketplace, currency
            LIMIT :limit
            """
        )
        result = await session.execute(
            sql,
            {
                "account_id": account_id,
                "at": at,
                "tolerance": tolerance_pct,
                "item_id": item_id,
                "marketplace": marketplace,
                "limit": limit,
            },
        )
        return list(result.all())

    async def overlaps(
        self, session: AsyncSession, account_id: uuid.UUID, *, item_id: uuid.UUID | None, limit: int
    ) -> list[Row[Any]]:
        """Pairs of priced quotes of one item and scope whose periods overlap (only legacy data can)."""
        sql = text(
            """
            SELECT a.item_id, a.scope_key, a.id AS first_id, b.id AS second_id
            FROM quotes a
            JOIN quotes b
              ON b.account_id = a.account_id AND b.item_id = a.item_id AND b.scope_key = a.scope_key
             AND a.id < b.id
             AND tstzrange(a.effective_from, a.effective_to) && tstzrange(b.effective_from, b.effective_to)
            WHERE a.account_id = :account_id
              AND a.status IN ('approved', 'expired') AND b.status IN ('approved', 'expired')
              AND (CAST(:item_id AS uuid) IS NULL OR a.item_id = :item_id)
            ORDER BY a.item_id, a.scope_key
            LIMIT :limit
            """
        )
        result = await session.execute(sql, {"account_id": account_id, "item_id": item_id, "limit": limit})
        return list(result.all())

    async def history(
        self, session: AsyncSession, account_id: uuid.UUID, item_id: uuid.UUID, *, scope_keys: Sequence[str] | None
    ) -> list[Quote]:
        stmt = self.select(account_id).where(Quote.item_id == item_id, Quote.status.in_(PRICED_STATUSES))
        if scope_keys is not None:
            stmt = stmt.where(Quote.scope_key.in_(list(scope_keys)))
        stmt = stmt.order_by(SCOPE_RANK, Quote.scope_key, Quote.effective_from)
        return list((await session.scalars(stmt)).all())

    async def expire_due(self, session: AsyncSession, now: datetime, limit: int) -> list[Quote]:
        """Approved quotes whose period has ended, across accounts (the expiry job's one cross-account query)."""
        stmt = (
            select(Quote)
            .where(Quote.status == QuoteStatus.approved.value, Quote.effective_to <= now)
            .order_by(Quote.effective_to)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.scalars(stmt)).all())

    async def copy_store_price_list(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        store: Store,
        at: datetime,
        sink: Callable[[bytes | bytearray | memoryview], Awaitable[Any]],
    ) -> None:
        """The store's effective price per item as CSV (with header), straight from PostgreSQL's COPY.

        PostgreSQL formats the CSV and asyncpg hands it over chunk by chunk to ``sink``; a slow ``sink``
        (a bounded queue feeding the HTTP response) pauses the COPY, so memory stays flat.
        """
        keys = store_scope_keys(store)
        sql = PRICE_LIST_SQL
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        # asyncpg renders the arguments as literals into ``COPY (<query>) TO STDOUT`` (COPY takes no parameters).
        await driver.copy_from_query(sql, account_id, keys, store.currency, at, output=sink, format="csv", header=True)


def _rfc3339(column: str) -> str:
    """A timestamptz as RFC 3339 in UTC with ``Z``, microseconds only when there are any."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL WHEN date_trunc('second', {column}) = {column} "
        f"""THEN to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') """
        f"""ELSE to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"""
    )


# The effective price list of one store: $1 account, $2 the store's scope keys, $3 its currency, $4 the instant.
PRICE_LIST_SQL = f"""
    SELECT i.asin, i.vendor_sku, e.item_id, e.cost_price::text AS cost_price, e.currency,
           e.list_price::text AS list_price, e.min_order_quantity, e.scope_type AS source,
           e.id AS quote_id, {_rfc3339("e.effective_from")} AS effective_from,
           {_rfc3339("e.effective_to")} AS effective_to
    FROM (
        SELECT DISTINCT ON (q.item_id) q.item_id, q.cost_price, q.currency, q.list_price,
               q.min_order_quantity, q.scope_type, q.id, q.effective_from, q.effective_to
        FROM quotes q
        WHERE q.account_id = $1 AND q.scope_key = ANY($2::text[]) AND q.currency = $3
          AND q.status IN ('approved', 'expired')
          AND q.effective_from <= $4 AND (q.effective_to IS NULL OR q.effective_to > $4)
        ORDER BY q.item_id, CASE q.scope_type WHEN 'store' THEN 0 WHEN 'marketplace' THEN 1 ELSE 2 END
    ) e
    JOIN items i ON i.account_id = $1 AND i.id = e.item_id
    ORDER BY i.asin
"""  # noqa: S608 - only fixed SQL fragments are interpolated


class QuoteEventRepository(AccountScopedRepository[QuoteEvent]):
    model = QuoteEvent

    async def for_quote(self, session: AsyncSession, account_id: uuid.UUID, quote_id: uuid.UUID) -> list[QuoteEvent]:
        stmt = (
            self.select(account_id)
            .where(QuoteEvent.quote_id == quote_id)
            .order_by(QuoteEvent.created_at, QuoteEvent.version, QuoteEvent.id)
        )
        return list((await session.scalars(stmt)).all())


class QuotePolicyRepository(AccountScopedRepository[QuotePolicy]):
    model = QuotePolicy

    async def for_account(
        self, session: AsyncSession, account_id: uuid.UUID, *, for_update: bool = False
    ) -> QuotePolicy | None:
        stmt = self.select(account_id)
        if for_update:
            stmt = stmt.with_for_update()
        policy: QuotePolicy | None = await session.scalar(stmt)
        return policy

    async def lock_account_policy(self, session: AsyncSession, account_id: uuid.UUID) -> None:
        """Serialise the first PUT of an account's policy (there is no row to lock yet)."""
        digest = hashlib.sha256(f"quote-policy:{account_id}".encode()).digest()
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": int.from_bytes(digest[:8], "big", signed=True)}
        )


async def items_by_ids(session: AsyncSession, account_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Item]:
    rows = await session.scalars(select(Item).where(Item.account_id == account_id, Item.id.in_(list(ids))))
    return {i.id: i for i in rows}


async def stores_by_codes(session: AsyncSession, account_id: uuid.UUID, codes: Sequence[str]) -> dict[str, Store]:
    if not codes:
        return {}
    rows = await session.scalars(select(Store).where(Store.account_id == account_id, Store.code.in_(list(codes))))
    return {s.code: s for s in rows}


async def store_codes(session: AsyncSession, account_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Store.id, Store.code).where(Store.account_id == account_id, Store.id.in_(list(ids)))
    )
    return {r.id: r.code for r in rows}


quotes = QuoteRepository()
quote_events = QuoteEventRepository()
quote_policies = QuotePolicyRepository()
