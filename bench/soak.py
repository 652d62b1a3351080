"""Soak: a bounded-time mixed load against uvicorn + an arq worker, watching for errors, memory and connection leaks.

One command sets everything up and tears it down: a scratch database (created and dropped), a private
``redis-server`` on a free port (so ``CLIENT LIST`` counts only this run's clients), a webhook receiver, the API
under uvicorn (one process) and ``acorn-api worker`` (one process), each a subprocess. ``--clients`` concurrent
clients then loop over a weighted mix of reads and writes for ``--minutes``:

* writes: create stores, catalog items and quote drafts (submitted too), upload a small remittance (each upload
  is loaded by the worker, opens refund cases, runs incremental reconciliation and emits events that are
  delivered to the receiver), create and delete webhook endpoints;
* reads: lists and details of stores, quotes, imports, ledger entries, refund cases, reconciliation invoices,
  events.

Every response other than the expected 2xx counts as an error. Every ``--sample`` seconds it records the RSS of
the API and worker processes, the PostgreSQL connections of the scratch database (``pg_stat_activity``) and the
Redis clients (``CLIENT LIST``). At the end, once the queue has drained, it checks the bounds and prints each:

* no error responses;
* RSS of each process grows less than ``--rss-bound`` MB over the second half of the run;
* PostgreSQL connections never exceed both pools plus 2, and the second half's peak is at most 2 above the
  first half's (pools fill lazily; a leak keeps growing);
* Redis clients: the second half's peak is no more than 2 above the first half's;
* every import loaded and every event delivered.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--sample 10]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from acorn_api.migrate import scratch_database  # noqa: E402
from tests.ledger import files  # noqa: E402

POOL_SIZE = 10  # each process's database pool (the default ``database_pool_size``)
BIG_LIMIT = 1_000_000
UPLOAD_NUMBERS = itertools.count(1)  # rate limits out of the way: the soak measures leaks, not the limiter

RECEIVER = r"""
import sys, uvicorn
count = 0

async def app(scope, receive, send):
    global count
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        count += 1
    body = str(count).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def loadavg() -> str:
    with open("/proc/loadavg") as f:  # a /proc read: nothing to block on
        return f.read().strip()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def wait_until_up(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.1)


@dataclass
class Sample:
    at: float
    api_rss: float
    worker_rss: float
    pg_connections: int
    redis_clients: int
    requests: int


@dataclass
class Load:
    api: httpx.AsyncClient
    headers: dict[str, str]
    receiver_url: str
    rng: random.Random
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    uploads: int = 0

    async def call(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            r = await self.api.request(method, path, headers=self.headers, **kwargs)
        except httpx.HTTPError as exc:
            self.statuses["exception"] += 1
            self.errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            raise
        self.latencies.append(time.perf_counter() - started)
        self.statuses[str(r.status_code)] += 1
        if r.status_code not in expect:
            self.errors.append(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r

    # -- writes
    async def create_store(self) -> None:
        code = f"S-{secrets.token_hex(4).upper()}"
        body = {
            "code": code,
            "name": f"Store {code}",
            "region": "NA",
            "marketplace": "US",
            "country": "US",
            "currency": "USD",
            "timezone": "America/New_York",
            "vendor_codes": ["ACME1"],
        }
        r = await self.call("POST", "/v1/stores", (201,), json=body)
        if r.status_code == 201:
            self.stores.append(r.json()["id"])

    async def create_quote(self) -> None:
        n = secrets.token_hex(4).upper()
        item = await self.call(
            "POST",
            "/v1/items",
            (201,),
            json={"asin": f"B0{n}", "vendor_sku": f"SKU-{n}", "title": f"Bottle {n}", "brand": "Acme"},
        )
        if item.status_code != 201:
            return
        body = {
            "item_id": item.json()["id"],
            "region": "NA",
            "marketplace": "US",
            "currency": "USD",
            "cost_price": f"{self.rng.randint(100, 9999) / 100:.2f}",
            "effective_from": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
        r = await self.call("POST", "/v1/quotes", (201,), json=body)
        if r.status_code == 201:
            quote_id = r.json()["id"]
            self.quotes.append(quote_id)
            await self.call("POST", f"/v1/quotes/{quote_id}/submit", (200,), json={"version": r.json()["version"]})

    async def upload(self) -> None:
        self.uploads += 1
        n = next(UPLOAD_NUMBERS)  # unique across clients: an identical file would be answered 200 (deduplicated)
        remittance = files.remittance(payment=f"SOAK{n}", invoices=4, start=10_000_000 + n * 10)
        r = await self.call(
            "POST",
            "/v1/imports",
            (202,),
            files={"file": (f"remittance-{n}.csv", files.to_csv(remittance.rows).encode())},
            data={"report_type": "remittance"},
        )
        if r.status_code == 202:
            self.imports.append(r.json()["id"])

    async def endpoint_churn(self) -> None:
        r = await self.call(
            "POST", "/v1/webhook-endpoints", (201,), json={"url": self.receiver_url, "event_types": ["quote.approved"]}
        )
        if r.status_code == 201:
            await self.call("DELETE", f"/v1/webhook-endpoints/{r.json()['id']}", (200,))

    # -- reads
    async def read(self) -> None:
        choice = self.rng.choice(
            [
                "/v1/stores",
                "/v1/quotes",
                "/v1/imports",
                "/v1/ledger/entries",
                "/v1/refund-cases",
                "/v1/reconciliation/invoices",
                "/v1/events",
                "/v1/webhook-endpoints",
                "detail",
            ]
        )
        if choice != "detail":
            await self.call("GET", choice, params={"limit": 50})
            return
        pools = [("stores", self.stores), ("quotes", self.quotes), ("imports", self.imports)]
        name, ids = self.rng.choice([p for p in pools if p[1]] or [("stores", [])])
        if ids:
            await self.call("GET", f"/v1/{name}/{self.rng.choice(ids)}")
        else:
            await self.call("GET", "/v1/stores")

    async def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.70:
            await self.read()
        elif roll < 0.80:
            await self.create_store()
        elif roll < 0.92:
            await self.create_quote()
        elif roll < 0.96:
            await self.upload()
        else:
            await self.endpoint_churn()


async def sample(
    api_pid: int, worker_pid: int, pg: asyncpg.Connection, database: str, rds: aioredis.Redis, requests: int, t0: float
) -> Sample:
    connections = await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
    )
    clients = await rds.client_list()
    return Sample(
        at=time.monotonic() - t0,
        api_rss=rss_mb(api_pid),
        worker_rss=rss_mb(worker_pid),
        pg_connections=int(connections),
        redis_clients=len(clients) - 1,  # not this script's own
        requests=requests,
    )


async def drained(pg: asyncpg.Connection, seconds: float) -> tuple[bool, dict[str, int]]:
    """Wait until every import finished and no delivery is pending (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while True:
        state = {
            "imports_pending": await pg.fetchval("SELECT count(*) FROM imports WHERE status IN ('queued','running')"),
            "imports_failed": await pg.fetchval("SELECT count(*) FROM imports WHERE status = 'failed'"),
            "imports_succeeded": await pg.fetchval("SELECT count(*) FROM imports WHERE status = 'succeeded'"),
            "deliveries_pending": await pg.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status='pending'"),
            "deliveries_succeeded": await pg.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"
            ),
            "events": await pg.fetchval("SELECT count(*) FROM events"),
            "refund_cases": await pg.fetchval("SELECT count(*) FROM refund_cases"),
            "reconciliation_runs": await pg.fetchval(
                "SELECT count(*) FROM reconciliation_runs WHERE status = 'succeeded'"
            ),
        }
        if not state["imports_pending"] and not state["deliveries_pending"]:
            return True, state
        if time.monotonic() > deadline:
            return False, state
        await asyncio.sleep(1)


async def create_tenant(database_url: str) -> str:
    from acorn_api.accounts.service import create_account
    from acorn_api.core.db import make_engine, make_sessionmaker
    from acorn_api.settings import Settings

    settings = Settings(environment="test", database_url=database_url)
    engine = make_engine(settings, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            created = await create_account(session, settings, name="Soak Vendor")
            await session.commit()
        return created.secret
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace, database_url: str, redis_url: str, logs: Path) -> int:
    database = database_url.rsplit("/", 1)[1].split("?")[0]
    secret = await create_tenant(database_url)
    api_port, receiver_port = free_port(), free_port()
    base, receiver = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{receiver_port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ACORN_ENVIRONMENT": "test",  # the receiver is on 127.0.0.1: loopback is allowed in development/test only
        "ACORN_DATABASE_URL": database_url,
        "ACORN_REDIS_URL": redis_url,
        "ACORN_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "ACORN_LOG_LEVEL": "WARNING",
        "ACORN_LOG_JSON": "false",
        "ACORN_JWT_KEYS_FILE": str(logs / "jwt.pem"),
        "ACORN_RATE_LIMITS_PER_MINUTE": json.dumps(
            dict.fromkeys(("admin", "purchasing", "operations", "finance", "viewer", "scoped"), BIG_LIMIT)
        ),
    }
    uvicorn_cmd = [sys.executable, "-m", "uvicorn", "acorn_api.asgi:app", "--host", "127.0.0.1", "--port"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([sys.executable, "-c", RECEIVER, str(receiver_port)], env, logs / "receiver.log"))
        api_proc = stack.enter_context(
            process([*uvicorn_cmd, str(api_port), "--no-access-log", "--log-level", "warning"], env, logs / "api.log")
        )
        worker_proc = stack.enter_context(
            process([sys.executable, "-m", "acorn_api.cli", "worker"], env, logs / "worker.log")
        )
        await wait_until_up(receiver + "/")
        await wait_until_up(base + "/healthz")
        pg = await asyncpg.connect(database_url)
        rds = aioredis.Redis.from_url(redis_url)
        headers = {"Authorization": f"Bearer {secret}"}
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as api:
            setup = Load(api, headers, receiver + "/hooks", random.Random(args.seed))
            for _ in range(3):  # endpoints that receive every event for the whole run
                await setup.call(
                    "POST", "/v1/webhook-endpoints", (201,), json={"url": receiver + "/all", "event_types": "*"}
                )
            loads = [Load(api, headers, receiver + "/hooks", random.Random(args.seed + n)) for n in range(args.clients)]
            t0 = time.monotonic()
            end = t0 + args.minutes * 60
            samples: list[Sample] = []

            async def client(load: Load) -> None:
                while time.monotonic() < end:
                    with contextlib.suppress(httpx.HTTPError):
                        await load.step()

            def total_requests() -> int:
                return sum(sum(x.statuses.values()) for x in loads)

            tasks = [asyncio.create_task(client(load)) for load in loads]
            print(" time | req/s | API RSS MB | worker RSS MB | PG conns | Redis clients | load avg", flush=True)
            last = 0
            while time.monotonic() < end:
                await asyncio.sleep(min(args.sample, max(end - time.monotonic(), 0.1)))
                s = await sample(api_proc.pid, worker_proc.pid, pg, database, rds, total_requests(), t0)
                rate = (s.requests - last) / args.sample
                last = s.requests
                samples.append(s)
                print(
                    f"{s.at:5.0f} | {rate:5.0f} | {s.api_rss:10.1f} | {s.worker_rss:13.1f} | {s.pg_connections:8d} |"
                    f" {s.redis_clients:13d} | {loadavg().split()[0]}",
                    flush=True,
                )
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - t0
            done, state = await drained(pg, args.drain)
            idle_clients = [c for c in await rds.client_list() if int(c.get("idle", 0)) > 60]
            print(
                f"after the drain: {len(await rds.client_list()) - 1} Redis clients, {len(idle_clients)} idle > 60 s; "
                f"{await pg.fetchval('SELECT count(*) FROM pg_stat_activity WHERE datname = $1', database) - 1} "
                "PostgreSQL connections",
                flush=True,
            )
            received = int((await api.get(receiver + "/count")).text) if done else -1
        await pg.close()
        await rds.aclose()

    statuses: Counter[str] = Counter()
    errors: list[str] = list(setup.errors)
    latencies: list[float] = []
    for load in loads:
        statuses.update(load.statuses)
        errors += load.errors
        latencies += load.latencies
    requests = sum(statuses.values())
    half = [s for s in samples if s.at >= samples[-1].at / 2]
    first = [s for s in samples if s.at < samples[-1].at / 2]
    checks: list[tuple[str, bool, str]] = []
    checks.append(
        ("no error responses", not errors, f"{len(errors)} errors; statuses {dict(sorted(statuses.items()))}")
    )
    for name, key in (("API", "api_rss"), ("worker", "worker_rss")):
        growth = getattr(half[-1], key) - getattr(half[0], key)
        peak = max(getattr(s, key) for s in samples)
        checks.append(
            (
                f"{name} RSS growth over the second half < {args.rss_bound:.0f} MB",
                growth < args.rss_bound,
                f"{getattr(half[0], key):.1f} -> {getattr(half[-1], key):.1f} MB ({growth:+.1f}); peak {peak:.1f} MB",
            )
        )
    pg_cap = 2 * POOL_SIZE + 2
    pg_first, pg_second = max(s.pg_connections for s in first), max(s.pg_connections for s in half)
    checks.append(
        (
            f"PostgreSQL connections <= {pg_cap} (two pools + 2) and second-half peak <= first-half peak + 2",
            max(pg_first, pg_second) <= pg_cap and pg_second <= pg_first + 2,
            f"first half peak {pg_first}, second half peak {pg_second}",
        )
    )
    rd_first, rd_second = max(s.redis_clients for s in first), max(s.redis_clients for s in half)
    checks.append(
        (
            "Redis clients: second-half peak <= first-half peak + 2",
            rd_second <= rd_first + 2,
            f"first half peak {rd_first}, second half peak {rd_second}",
        )
    )
    checks.append(
        (
            "background work drained: every import loaded, every delivery made",
            done and not state["imports_failed"] and state["deliveries_succeeded"] <= received,
            f"{state}; receiver got {received} POSTs",
        )
    )
    lat = sorted(latencies)
    print(
        f"\n{args.minutes:g} min, {args.clients} clients: {requests:,} requests in {elapsed:.0f} s "
        f"({requests / elapsed:.0f}/s), latency p50 {statistics.median(lat) * 1000:.0f} ms "
        f"p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms; load average {loadavg()}"
    )
    ok = True
    for title, passed, detail in checks:
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {title}: {detail}")
    for error in errors[:10]:
        print(f"  error: {error}")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--rss-bound", type=float, default=30.0, help="MB of RSS growth allowed over the second half")
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait for background work at the end")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ACORN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    redis_port = free_port()
    redis_dir = Path(tempfile.mkdtemp(prefix="acorn-soak-redis-"))
    logs = Path(tempfile.mkdtemp(prefix="acorn-soak-"))
    redis_args = [
        "redis-server",
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(redis_dir),
    ]
    code = 1
    try:
        with (
            process(redis_args, dict(os.environ), logs / "redis.log"),
            scratch_database(args.database_url, prefix="acorn_bench_soak") as database_url,
        ):
            time.sleep(0.5)
            code = asyncio.run(run(args, database_url, f"redis://127.0.0.1:{redis_port}/0", logs))
    finally:
        shutil.rmtree(redis_dir, ignore_errors=True)
        print(f"logs: {logs}")
    sys.exit(code)


if __name__ == "__main__":
    main()
