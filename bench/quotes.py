"""Effective prices at scale: one item/store lookup through the API, and a store's full price-list export,
each against the bare SQL doing the same work through asyncpg, measured in the same run.

Data: ``--items`` items × ``--stores`` stores (all in marketplace US), one approved store quote per pair, plus a
marketplace (US) and a region (NA, USD) default per item — loaded with COPY. The issue's full size is
100,000 × 200 (20 M quotes); the default here is 20,000 × 100 (2 M store quotes + 40,000 defaults), which fits
this 2-core machine's budget. The script creates and drops its own database and runs the app under real
uvicorn (one worker) with authentication and the rate limiter on (limits raised so nothing is refused).

    .venv/bin/python bench/quotes.py [--items 20000] [--stores 100] [--lookups 3000] [--exports 3]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]

Targets: API lookup p99 < 5 ms with one client; export ≥ 50,000 rows/s with flat server memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from acorn_api.migrate import scratch_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHUNK = 200_000
START = datetime(2025, 1, 1, tzinfo=UTC)
RESOLVE_SQL = """
SELECT id, cost_price, currency, scope_type
FROM quotes
WHERE account_id = $1 AND item_id = $2 AND scope_key = ANY($3::text[]) AND currency = $4
  AND status IN ('approved', 'expired') AND effective_from <= $5 AND (effective_to IS NULL OR effective_to > $5)
ORDER BY CASE scope_type WHEN 'store' THEN 0 WHEN 'marketplace' THEN 1 ELSE 2 END
LIMIT 1
"""


def serve(port: int) -> None:
    import uvicorn

    from acorn_api.main import create_app

    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port)], env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _seed_account(url: str) -> tuple[uuid.UUID, str]:
    from acorn_api.accounts.scopes import Role
    from acorn_api.accounts.service import create_account, issue_api_key
    from acorn_api.core.db import make_engine, make_sessionmaker
    from acorn_api.settings import Settings

    settings = Settings(database_url=url)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as s:
            created = await create_account(s, settings, name="bench")
            _, secret = await issue_api_key(s, settings, created.account.id, name="bench viewer", role=Role.viewer)
            await s.commit()
    finally:
        await engine.dispose()
    return created.account.id, secret


async def load(url: str, items: int, stores: int) -> tuple[uuid.UUID, str, list[uuid.UUID], list[uuid.UUID], float]:
    """Items, stores and quotes by COPY; returns the account, a viewer key, the ids and the load time."""
    account_id, secret = await _seed_account(url)
    item_ids = [uuid.uuid4() for _ in range(items)]
    store_ids = [uuid.uuid4() for _ in range(stores)]
    rng = random.Random(7)
    conn = await asyncpg.connect(_dsn(url))
    started = time.perf_counter()
    try:
        await conn.copy_records_to_table(
            "items",
            columns=["id", "account_id", "asin", "vendor_sku", "title"],
            records=[(i, account_id, f"B0{n:08d}", f"SKU-{n}", f"Item {n}") for n, i in enumerate(item_ids)],
        )
        await conn.copy_records_to_table(
            "stores",
            columns=["id", "account_id", "code", "name", "region", "marketplace", "country", "currency", "timezone"],
            records=[
                (s, account_id, f"S{n:04d}", f"Store {n}", "NA", "US", "US", "USD", "America/New_York")
                for n, s in enumerate(store_ids)
            ],
        )
        columns = [
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
            "status",
        ]
        defaults = [
            (uuid.uuid4(), account_id, i, "region", None, "NA", None, "USD", Decimal("9.0000"), START, "approved")
            for i in item_ids
        ] + [
            (uuid.uuid4(), account_id, i, "marketplace", None, "NA", "US", "USD", Decimal("9.5000"), START, "approved")
            for i in item_ids
        ]
        await conn.copy_records_to_table("quotes", columns=columns, records=defaults)
        batch: list[tuple[object, ...]] = []
        for s in store_ids:
            for i in item_ids:
                price = Decimal(rng.randint(900, 1100)).scaleb(-2)
                batch.append((uuid.uuid4(), account_id, i, "store", s, None, None, "USD", price, START, "approved"))
                if len(batch) >= CHUNK:
                    await conn.copy_records_to_table("quotes", columns=columns, records=batch)
                    batch = []
        if batch:
            await conn.copy_records_to_table("quotes", columns=columns, records=batch)
        await conn.execute("ANALYZE items; ANALYZE stores; ANALYZE quotes")
    finally:
        await conn.close()
    return account_id, secret, item_ids, store_ids, time.perf_counter() - started


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def bare_lookups(url: str, account_id: uuid.UUID, pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> list[float]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        stmt = await conn.prepare(RESOLVE_SQL)
        at = datetime.now(UTC)
        times = []
        for item_id, store_id in pairs:
            keys = [f"store:{store_id}", "marketplace:US", "region:NA:USD"]
            t = time.perf_counter()
            row = await stmt.fetchrow(account_id, item_id, keys, "USD", at)
            times.append((time.perf_counter() - t) * 1000)
            assert row is not None
        return times
    finally:
        await conn.close()


async def api_lookups(base: str, key: str, pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for item_id, store_id in pairs:
            t = time.perf_counter()
            r = await client.get("/v1/prices/effective", params={"item_id": str(item_id), "store_id": str(store_id)})
            times.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                raise RuntimeError(r.text)
    return times


async def api_store_gets(base: str, key: str, store_ids: list[uuid.UUID]) -> list[float]:
    """The stack's floor: an authenticated one-row detail endpoint (GET /v1/stores/{id}) on the same server."""
    times = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for store_id in store_ids:
            t = time.perf_counter()
            r = await client.get(f"/v1/stores/{store_id}")
            times.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                raise RuntimeError(r.text)
    return times


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def bare_export(url: str, account_id: uuid.UUID, store_id: uuid.UUID) -> tuple[int, float]:
    """The physical limit: PostgreSQL's own COPY of the same query to CSV, read by asyncpg and discarded."""
    from acorn_api.quotes.repository import PRICE_LIST_SQL

    conn = await asyncpg.connect(_dsn(url))
    rows = -1  # the header

    async def count(chunk: bytes) -> None:
        nonlocal rows
        rows += bytes(chunk).count(b"\n")

    try:
        keys = [f"store:{store_id}", "marketplace:US", "region:NA:USD"]
        t = time.perf_counter()
        await conn.copy_from_query(
            PRICE_LIST_SQL, account_id, keys, "USD", datetime.now(UTC), output=count, format="csv", header=True
        )
        return rows, time.perf_counter() - t
    finally:
        await conn.close()


async def api_export(base: str, key: str, store_id: uuid.UUID, pid: int) -> tuple[int, float, int, int]:
    """Rows, seconds, RSS before and peak RSS (KiB) of the server while it streams."""
    before = _rss_kib(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rows = -1  # the header
    t = time.perf_counter()
    try:
        async with (
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client,
            client.stream("GET", "/v1/quotes/export", params={"format": "csv", "store_id": str(store_id)}) as r,
        ):
            if r.status_code != 200:
                raise RuntimeError(await r.aread())
            async for chunk in r.aiter_bytes():
                rows += chunk.count(b"\n")
    finally:
        elapsed = time.perf_counter() - t
        done.set()
        sampler.join()
    return rows, elapsed, before, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--exports", type=int, default=3)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return

    with scratch_database(args.database_url, prefix="acorn_bench_quotes") as url:
        account_id, key, item_ids, store_ids, load_s = asyncio.run(load(url, args.items, args.stores))
        total = args.items * (args.stores + 2)
        print(f"loaded {total:,} quotes ({args.items:,} items x {args.stores} stores + 2 defaults) in {load_s:.1f} s")
        rng = random.Random(11)
        pairs = [(rng.choice(item_ids), rng.choice(store_ids)) for _ in range(args.lookups)]
        warm = pairs[:200]
        run = secrets.token_hex(4)
        env = {
            **os.environ,
            "ACORN_DATABASE_URL": url,
            "ACORN_REDIS_URL": args.redis_url,
            "ACORN_ENVIRONMENT": "staging",
            "ACORN_LOG_LEVEL": "WARNING",
            "ACORN_REDIS_KEY_PREFIX": f"acorn-bench-{run}",
            "ACORN_ARQ_QUEUE_NAME": f"acorn-bench-{run}:queue",
            "ACORN_RATE_LIMITS_PER_MINUTE": json.dumps({"viewer": 1_000_000_000, "admin": 1_000_000_000}),
        }
        asyncio.run(bare_lookups(url, account_id, warm))
        bare = asyncio.run(bare_lookups(url, account_id, pairs))
        with _server(env) as (base, pid):
            asyncio.run(api_lookups(base, key, warm))
            api = asyncio.run(api_lookups(base, key, pairs))
            floor = asyncio.run(api_store_gets(base, key, [s for _, s in pairs]))
            exports = [asyncio.run(api_export(base, key, store_ids[n], pid)) for n in range(args.exports)]
        bare_exports = [asyncio.run(bare_export(url, account_id, store_ids[n])) for n in range(args.exports)]

    b50, b99, a50, a99 = _pct(bare, 0.5), _pct(bare, 0.99), _pct(api, 0.5), _pct(api, 0.99)
    print(f"\nlookup, one client, {len(pairs):,} requests")
    print(f"  bare asyncpg query : p50 {b50:.2f} ms  p99 {b99:.2f} ms")
    print(f"  API (auth + rate limit + ORM + JSON): p50 {a50:.2f} ms  p99 {a99:.2f} ms")
    f50, f99 = _pct(floor, 0.5), _pct(floor, 0.99)
    print(f"  ratio API/bare     : p50 {a50 / b50:.1f}x  p99 {a99 / b99:.1f}x   target p99 < 5 ms: {a99 < 5}")
    print(f"  stack floor (GET /v1/stores/{{id}}, same server): p50 {f50:.2f} ms  p99 {f99:.2f} ms")
    print(f"  lookup cost above the floor: p50 {a50 - f50:+.2f} ms  p99 {a99 - f99:+.2f} ms")
    api_rate = statistics.median(rows / s for rows, s, _, _ in exports)
    bare_rate = statistics.median(rows / s for rows, s in bare_exports)
    rows = exports[0][0]
    growth = max(peak - before for _, _, before, peak in exports) / 1024
    print(f"\nexport of one store ({rows:,} rows), median of {len(exports)}")
    print(f"  bare COPY (asyncpg): {bare_rate:,.0f} rows/s")
    print(
        f"  API CSV stream     : {api_rate:,.0f} rows/s  ({api_rate / bare_rate:.2f} of bare)"
        f"  target >= 50,000: {api_rate >= 50_000}"
    )
    print(f"  server RSS growth while streaming: {growth:.1f} MiB (peak {max(p for *_, p in exports) / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
