"""Deterministic, COPY-based seed for the API benchmark: one large account and a few small ones.

The large account gets ``stores`` stores, ``items`` items, one approved region quote per item (plus a store quote
for the first item in every store) and ``orders`` purchase orders (the largest table). Small accounts get the same
shapes at a hundredth of the size, so that the account filter has other tenants' rows to skip. ``seed_ledger`` adds the
large account's ledger (invoices, payments, deductions, reversals), refund cases, imports and one matching run.
Every id, time and number comes from ``random.Random(seed)``, so two runs seed identical rows.

    .venv/bin/python bench/seed.py --database-url postgresql://postgres@127.0.0.1:5432/acorn_bench --account-id <uuid>
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
REGIONS = [("NA", "US", "US", "USD", "America/New_York"), ("EU", "DE", "DE", "EUR", "Europe/Berlin")]


@dataclass(frozen=True)
class Seeded:
    account_id: uuid.UUID
    store_id: uuid.UUID
    item_id: uuid.UUID
    orders: int
    seconds: float


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _asin(n: int) -> str:
    return f"B{n:09d}"


async def seed_account(
    connection: asyncpg.Connection,
    account_id: uuid.UUID,
    *,
    stores: int,
    items: int,
    orders: int,
    seed: int,
) -> Seeded:
    """COPY one account's stores, items, quotes and purchase orders; returns ids worth requesting."""
    rng = random.Random(seed)
    started = time.perf_counter()
    store_rows = []
    for n in range(stores):
        region, marketplace, country, currency, tz = REGIONS[n % len(REGIONS)]
        created = EPOCH + timedelta(minutes=n)
        store_rows.append(
            (
                _uuid(rng),
                account_id,
                f"ST-{n:05d}",
                f"Store {n}",
                region,
                marketplace,
                country,
                currency,
                tz,
                [f"VC{n % 10}"],
                "active",
                "{}",
                1,
                created,
                created,
            )
        )
    await connection.copy_records_to_table(
        "stores",
        records=store_rows,
        columns=[
            "id",
            "account_id",
            "code",
            "name",
            "region",
            "marketplace",
            "country",
            "currency",
            "timezone",
            "vendor_codes",
            "status",
            "metadata",
            "version",
            "created_at",
            "updated_at",
        ],
    )
    item_rows = []
    for n in range(items):
        created = EPOCH + timedelta(seconds=n * 7)
        item_rows.append(
            (
                _uuid(rng),
                account_id,
                _asin(n),
                f"SKU-{n:07d}",
                f"Widget model {n} in {('red', 'blue', 'green')[n % 3]}",
                ("Acme", "Globex", "Initech", "Umbrella")[n % 4],
                "Eaches",
                None,
                "discontinued" if n % 10 == 0 else "active",
                1,
                created,
                created,
            )
        )
    await connection.copy_records_to_table(
        "items",
        records=item_rows,
        columns=[
            "id",
            "account_id",
            "asin",
            "vendor_sku",
            "title",
            "brand",
            "unit_of_measure",
            "case_size",
            "status",
            "version",
            "created_at",
            "updated_at",
        ],
    )
    quote_rows = []
    for n, item in enumerate(item_rows):
        price = Decimal(rng.randrange(100, 100_000)) / 100
        quote_rows.append(
            (
                _uuid(rng),
                account_id,
                item[0],
                "region",
                None,
                "NA",
                None,
                "USD",
                price,
                EPOCH,
                None,
                "approved",
                EPOCH + timedelta(seconds=n),
                EPOCH,
            )
        )
    for store in store_rows:
        quote_rows.append(
            (
                _uuid(rng),
                account_id,
                item_rows[0][0],
                "store",
                store[0],
                None,
                None,
                store[7],
                Decimal("9.9900"),
                EPOCH,
                None,
                "approved",
                EPOCH,
                EPOCH,
            )
        )
    await connection.copy_records_to_table(
        "quotes",
        records=quote_rows,
        columns=[
            "id",
            "account_id",
            "item_id",
            "scope_type",
            "store_id",
            "region",
            "marketplace",
            "currency",
            "cost_price",
            "effective_from",
            "effective_to",
            "status",
            "created_at",
            "updated_at",
        ],
    )
    connection_id = _uuid(rng)
    await connection.execute(
        """INSERT INTO vendor_connections (id, account_id, name, region, lwa_client_id_encrypted,
               lwa_client_secret_encrypted, lwa_refresh_token_encrypted, credentials_updated_at)
           VALUES ($1, $2, 'bench', 'NA', '\\x00', '\\x00', '\\x00', $3)""",
        connection_id,
        account_id,
        EPOCH,
    )

    columns = [
        "id",
        "account_id",
        "connection_id",
        "store_id",
        "purchase_order_number",
        "state",
        "purchase_order_type",
        "purchase_order_date",
        "changed_at",
        "vendor_code",
        "currency",
        "total_net_cost",
        "created_at",
        "updated_at",
    ]
    batch = 200_000
    remaining = orders
    while remaining > 0:
        size = min(batch, remaining)
        rows = []
        start = orders - remaining
        for n in range(start, start + size):
            created = EPOCH + timedelta(seconds=n * 3)
            store = store_rows[n % len(store_rows)]
            rows.append(
                (
                    _uuid(rng),
                    account_id,
                    connection_id,
                    store[0],
                    f"PO{n:08d}",
                    ("New", "Acknowledged", "Closed")[n % 3],
                    "RegularOrder",
                    created,
                    created,
                    store[9][0],
                    "USD",
                    Decimal(rng.randrange(1000, 10_000_000)) / 100,
                    created,
                    created,
                )
            )
        await connection.copy_records_to_table("purchase_orders", records=rows, columns=columns)
        remaining -= size
    return Seeded(
        account_id=account_id,
        store_id=store_rows[0][0],
        item_id=item_rows[0][0],
        orders=orders,
        seconds=time.perf_counter() - started,
    )


async def seed_ledger(
    dsn: str, redis_url: str, account_id: uuid.UUID, *, invoices: int, imports: int = 20, seed: int = 7
) -> float:
    """The ledger, refund-case and reconciliation rows of one account, then one full matching run.

    Rows come from ``bench/reconciliation.py``'s deterministic generator (per invoice: an invoice entry and row,
    usually a payment line, about one deduction, one refund case per tenth deduction; ~3.1 ledger lines per
    invoice), spread over ``imports`` succeeded imports and the account's stores; then the real
    ``match_invoices`` job fills ``invoice_balances`` and the rollups the reconciliation endpoints read.
    """
    from bench.reconciliation import START, Generator, copy_batch, run_match

    rng = random.Random(seed)
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        store_ids = [
            r["id"]
            for r in await connection.fetch(
                "SELECT id FROM stores WHERE account_id = $1 ORDER BY created_at, id LIMIT 20", account_id
            )
        ]
        await connection.copy_records_to_table(
            "payments",
            columns=[
                "id",
                "account_id",
                "payment_number",
                "payment_date",
                "currency",
                "payment_currency",
                "exchange_rate",
            ],
            records=[
                (
                    _uuid(rng),
                    account_id,
                    f"PAY{n:06d}",
                    START + timedelta(days=3 * n),
                    "EUR",
                    "USD",
                    Decimal("1.08") + Decimal(n % 7) / 100,
                )
                for n in range(250)
            ],
        )
        generator = Generator(account_id, store_ids)
        per_import = max(invoices // imports, 1)
        for n, first in enumerate(range(0, invoices, per_import)):
            import_id = _uuid(rng)
            await connection.execute(
                "INSERT INTO imports (id, account_id, report_type, status, sha256, size_bytes, created_at, updated_at)"
                " VALUES ($1, $2, 'remittance', 'succeeded', $3, 1, $4, $4)",
                import_id,
                account_id,
                f"{rng.getrandbits(256):064x}",
                EPOCH + timedelta(hours=n),
            )
            await copy_batch(connection, generator.batch(first, min(per_import, invoices - first), import_id))
        await connection.execute(
            "VACUUM (ANALYZE) ledger_entries, invoices, payment_lines, payments, refund_cases, imports"
        )
    finally:
        await connection.close()
    await run_match(dsn, redis_url, account_id, None)
    return time.perf_counter() - started


async def seed(
    dsn: str, big_account: uuid.UUID, small_accounts: list[uuid.UUID], *, orders: int, items: int, stores: int
) -> Seeded:
    connection = await asyncpg.connect(dsn)
    try:
        for n, account in enumerate(small_accounts):
            await seed_account(
                connection,
                account,
                stores=max(stores // 20, 2),
                items=max(items // 100, 10),
                orders=max(orders // 100, 10),
                seed=1000 + n,
            )
        big = await seed_account(connection, big_account, stores=stores, items=items, orders=orders, seed=42)
        await connection.execute("VACUUM (ANALYZE) stores, items, quotes, purchase_orders")
        return big
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a migrated database (plain postgresql:// DSN)")
    parser.add_argument("--account-id", required=True, type=uuid.UUID)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=200)
    args = parser.parse_args()
    done = asyncio.run(
        seed(args.database_url, args.account_id, [], orders=args.orders, items=args.items, stores=args.stores)
    )
    print(f"seeded account {done.account_id} in {done.seconds:.1f} s")


if __name__ == "__main__":
    main()
