"""Refund cases at scale: creating and classifying a case for each of 200,000 deductions, against a single
set-based SQL INSERT of the same cases measured in the same run; then listing by priority with filters through
the API with one client.

Data (COPY): ``--deductions`` deduction ledger entries of all eight deduction types (log-normal amounts, median
about 90, one in ten at or above the 500 review threshold), one invoice per four deductions (due dates for shortage
and price claim deadlines), 20 stores in four time zones, and three classification rules. Each round:

* **baseline**: ``INSERT INTO refund_cases … SELECT … FROM ledger_entries`` with the type mapped by a ``CASE`` and
  the entry's references copied — the physical cost of writing the same case rows with their indexes and foreign
  keys (no rules, no deadlines, no scores, no events, no anti-join);
* **ACORN**: ``refunds.service.open_cases`` — the job's work: rules compiled to SQL, deadlines per type and time
  zone, likelihood / expected recovery / priority, one ``refund_case.created`` event per case (plus
  ``needs_review``), and the linking pass — committed.

Cases, links and events are truncated between runs; the order of the two alternates per round. Then the API
(real uvicorn, one worker, auth and rate limiter on) serves ``GET /v1/refund-cases?sort=priority`` with filter
combinations and follows cursors several pages deep, one client, against the bare SQL through asyncpg.

    .venv/bin/python bench/cases.py [--deductions 200000] [--rounds 3] [--requests 600]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]

Targets: ACORN ≤ 2× the baseline; list p99 < 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from quotes import _dsn, _pct, _server  # noqa: E402 - shared bench helpers

from acorn_api.migrate import scratch_database  # noqa: E402

TYPES = [
    "shortage_claim",
    "price_claim",
    "chargeback",
    "coop",
    "return",
    "damage_allowance",
    "provision",
    "price_protection",
]
DESCRIPTIONS = ["ASN accuracy", "Carton labels", "PO on-time accuracy", "Prep", "Co-op MDF", "Freight allowance", ""]
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"]
BASELINE_SQL = """
INSERT INTO refund_cases (account_id, id, origin_entry_id, origin_entry_type, type, status, amount, currency, opened_on,
                          store_id, vendor_code, invoice_number, po_number, payment_number, reference, asin)
SELECT account_id, gen_random_uuid(), id, entry_type,
       CASE entry_type WHEN 'shortage_claim' THEN 'shortage' WHEN 'price_claim' THEN 'price_claim'
            WHEN 'chargeback' THEN 'compliance_chargeback' WHEN 'coop' THEN 'coop' WHEN 'return' THEN 'customer_return'
            WHEN 'damage_allowance' THEN 'warehouse_damage' WHEN 'provision' THEN 'provision'
            ELSE 'price_protection' END,
       'open', abs(amount), currency, occurred_on,
       store_id, vendor_code, invoice_number, po_number, payment_number, reference, asin
FROM ledger_entries
WHERE account_id = $1 AND entry_type = ANY($2::text[])
ON CONFLICT (account_id, origin_entry_id) DO NOTHING
"""
LIST_SQL = """
SELECT * FROM refund_cases
WHERE account_id = $1 AND status = ANY($2::text[]) AND amount >= $3
  AND ($4::text IS NULL OR type = $4) AND ($5::date IS NULL OR dispute_deadline < $5)
ORDER BY priority DESC, id DESC LIMIT 51
"""


async def _seed(url: str) -> tuple[uuid.UUID, str]:
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


async def load(url: str, account_id: uuid.UUID, deductions: int) -> float:
    rng = random.Random(5)
    conn = await asyncpg.connect(_dsn(url))
    started = time.perf_counter()
    try:
        stores = [uuid.uuid4() for _ in range(20)]
        await conn.copy_records_to_table(
            "stores",
            columns=["id", "account_id", "code", "name", "region", "marketplace", "country", "currency", "timezone"],
            records=[
                (s, account_id, f"S{n:02d}", f"Store {n}", "NA", "US", "US", "USD", ZONES[n % 4])
                for n, s in enumerate(stores)
            ],
        )
        invoices = deductions // 4
        base = date(2026, 1, 1)
        await conn.copy_records_to_table(
            "invoices",
            columns=["id", "account_id", "invoice_number", "due_on", "amount", "currency", "source"],
            records=[
                (
                    uuid.uuid4(),
                    account_id,
                    f"INV{n:07d}",
                    base + timedelta(days=n % 330),
                    Decimal("1000"),
                    "USD",
                    "import",
                )
                for n in range(invoices)
            ],
        )
        rows = []
        for n in range(deductions):
            kind = TYPES[n % len(TYPES)]
            # log-normal like real deductions: median ~90, one in ten at or above the 500 review threshold
            amount = -min(Decimal(int(rng.lognormvariate(9.1, 1.35)) + 100).scaleb(-2), Decimal("250000"))
            rows.append(
                (
                    uuid.uuid4(),
                    account_id,
                    kind,
                    amount,
                    "USD",
                    base + timedelta(days=rng.randint(0, 330)),
                    f"INV{rng.randrange(invoices):07d}",
                    f"PAY{n // 500:05d}",
                    f"VC{n % 3}",
                    stores[n % 20],
                    f"REF{n:08d}",
                    DESCRIPTIONS[n % len(DESCRIPTIONS)] or None,
                    f"bench:{n}",
                )
            )
        await conn.copy_records_to_table(
            "ledger_entries",
            columns=[
                "id", "account_id", "entry_type", "amount", "currency", "occurred_on", "invoice_number",
                "payment_number", "vendor_code", "store_id", "reference", "description", "natural_key",
            ],
            records=rows,
        )  # fmt: skip
        rules = [
            (10, "labels to ops", ["chargeback"], "label", None, None, None, "ops@vendor.test", ["labels"], None),
            (
                20,
                "big co-op to finance",
                ["coop"],
                None,
                None,
                Decimal("1000"),
                "coop",
                "finance@vendor.test",
                [],
                True,
            ),
            (30, "VC2 returns", ["return"], None, "VC2", None, None, None, ["vc2"], False),
        ]
        await conn.copy_records_to_table(
            "case_rules",
            columns=[
                "id", "account_id", "position", "name", "entry_types", "description_pattern", "vendor_code",
                "min_amount", "set_type", "set_assignee", "set_tags", "needs_review",
            ],
            records=[(uuid.uuid4(), account_id, *r) for r in rules],
        )  # fmt: skip
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _truncate(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE refund_case_events, refund_case_entries, refund_cases, events CASCADE")
    await conn.execute("VACUUM ANALYZE refund_cases")


async def _analyze(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute("ANALYZE refund_cases")
    finally:
        await conn.close()


async def baseline(url: str, account_id: uuid.UUID) -> tuple[float, int]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await _truncate(conn)
        started = time.perf_counter()
        status = await conn.execute(BASELINE_SQL, account_id, TYPES)
        elapsed = time.perf_counter() - started
        return elapsed, int(status.split()[-1])
    finally:
        await conn.close()


async def acorn(url: str, account_id: uuid.UUID) -> tuple[float, int]:
    from acorn_api.core.db import make_engine, make_sessionmaker
    from acorn_api.refunds import service
    from acorn_api.settings import Settings

    conn = await asyncpg.connect(_dsn(url))
    try:
        await _truncate(conn)
    finally:
        await conn.close()
    engine = make_engine(Settings(database_url=url))
    try:
        async with make_sessionmaker(engine)() as s:
            started = time.perf_counter()
            result = await service.open_cases(s, account_id, import_id=None)
            await s.commit()
            elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    return elapsed, result.created


QUERIES: list[dict[str, Any]] = [
    {"status": ["open", "needs_review"]},
    {"status": ["needs_review"], "min_amount": "500"},
    {"status": ["open"], "type": "shortage"},
    {"status": ["open", "needs_review", "ready_to_dispute"], "deadline_before": "2026-12-15"},
    {"status": ["needs_review"], "min_amount": "1000", "type": "compliance_chargeback"},
]


def _params(q: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("sort", "priority"), ("limit", "50")]
    for k, v in q.items():
        out += [(k, x) for x in v] if isinstance(v, list) else [(k, str(v))]
    return out


async def api_list(base: str, key: str, requests: int, by_query: dict[int, list[float]] | None = None) -> list[float]:
    times: list[float] = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        n = 0
        shape = 0
        while n < requests:
            q = QUERIES[shape % len(QUERIES)]
            shape += 1
            cursor = None
            for _ in range(4):  # the first page and three pages deeper
                params = _params(q) + ([("cursor", cursor)] if cursor else [])
                t = time.perf_counter()
                r = await client.get("/v1/refund-cases", params=params)
                times.append((time.perf_counter() - t) * 1000)
                if by_query is not None:
                    by_query.setdefault(QUERIES.index(q), []).append(times[-1])
                assert r.status_code == 200, r.text
                n += 1
                cursor = r.json()["next_cursor"]
                if not cursor:
                    break
    return times


async def api_floor(base: str, key: str, requests: int) -> list[float]:
    """The authenticated request path with almost no work: GET /v1/case-settings (one tiny query)."""
    times: list[float] = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for _ in range(requests):
            t = time.perf_counter()
            r = await client.get("/v1/case-settings")
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return times


async def bare_list(url: str, account_id: uuid.UUID, requests: int) -> list[float]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        stmt = await conn.prepare(LIST_SQL)
        times = []
        for n in range(requests):
            q = QUERIES[n % len(QUERIES)]
            deadline = date.fromisoformat(q["deadline_before"]) if "deadline_before" in q else None
            t = time.perf_counter()
            await stmt.fetch(account_id, q["status"], Decimal(q.get("min_amount", "0")), q.get("type"), deadline)
            times.append((time.perf_counter() - t) * 1000)
        return times
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--deductions", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.serve:
        from quotes import serve

        serve(args.port)
        return

    with scratch_database(args.database_url, prefix="acorn_bench_cases") as url:
        account_id, key = asyncio.run(_seed(url))
        load_s = asyncio.run(load(url, account_id, args.deductions))
        print(f"loaded {args.deductions:,} deductions in {load_s:.1f} s; load average {os.getloadavg()[0]:.1f}")
        rounds: list[tuple[float, float, float]] = []
        for n in range(args.rounds):
            if n % 2 == 0:
                b, b_rows = asyncio.run(baseline(url, account_id))
                a, a_rows = asyncio.run(acorn(url, account_id))
            else:
                a, a_rows = asyncio.run(acorn(url, account_id))
                b, b_rows = asyncio.run(baseline(url, account_id))
            assert a_rows == b_rows == args.deductions, (a_rows, b_rows)
            load_avg = os.getloadavg()[0]
            rounds.append((b, a, load_avg))
            print(f"round {n + 1}: baseline {b:.2f} s  ACORN {a:.2f} s  ratio {a / b:.2f}x  load {load_avg:.1f}")
        asyncio.run(acorn(url, account_id))  # leave the real cases for the list benchmark
        asyncio.run(_analyze(url))  # what autovacuum does within a minute of the load
        conn_url = url
        asyncio.run(bare_list(conn_url, account_id, 100))
        bare = asyncio.run(bare_list(conn_url, account_id, args.requests))
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
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench"), env.get("PYTHONPATH", "")])
        with _server(env) as (base, _pid):
            asyncio.run(api_list(base, key, 100))
            by_query: dict[int, list[float]] = {}
            api = asyncio.run(api_list(base, key, args.requests, by_query))
            floor = asyncio.run(api_floor(base, key, args.requests))

    ratios = [a / b for b, a, _ in rounds] or [0.0]
    print(f"\ncase creation, {args.deductions:,} deductions, {len(rounds)} rounds")
    print(f"  baseline INSERT … SELECT : median {statistics.median([b for b, _, _ in rounds] or [0]):.2f} s")
    print(f"  ACORN open_cases         : median {statistics.median([a for _, a, _ in rounds] or [0]):.2f} s")
    print(
        f"  ratio                    : median {statistics.median(ratios):.2f}x  range {min(ratios):.2f}–"
        f"{max(ratios):.2f}x  target ≤ 2x: {statistics.median(ratios) <= 2}"
    )
    loads = [x for *_, x in rounds] or [os.getloadavg()[0]]
    print(f"  load average during rounds: {min(loads):.1f}–{max(loads):.1f}")
    b50, b99, a50, a99 = _pct(bare, 0.5), _pct(bare, 0.99), _pct(api, 0.5), _pct(api, 0.99)
    print(f"\nlist by priority with filters, one client, {len(api):,} API requests (first pages and deeper)")
    print(f"  bare asyncpg query : p50 {b50:.2f} ms  p99 {b99:.2f} ms")
    print(f"  API                : p50 {a50:.2f} ms  p99 {a99:.2f} ms   target p99 < 25 ms: {a99 < 25}")
    f50, f99 = _pct(floor, 0.5), _pct(floor, 0.99)
    print(f"  floor (GET /v1/case-settings, same server): p50 {f50:.2f} ms  p99 {f99:.2f} ms")
    for index, values in sorted(by_query.items()):
        p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
        print(f"    {json.dumps(QUERIES[index])}: n {len(values)}  p50 {p50:.2f}  p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
