"""Connector throughput: sync 10,000 purchase orders from the SP-API simulator at Amazon's documented rate.

getPurchaseOrders allows 10 requests/s with a burst of 10. With ``includeDetails`` and 100 orders per page,
10,000 orders created inside one 7-day window are 100 pages, each needing the previous page's ``nextToken``.
The fastest any client can go: the first ``burst`` calls at once, then one every ``1/rate`` s, so the last call
starts at ``(calls - burst) / rate`` s (9.0 s for 100 calls) — the theoretical minimum, computed from the calls
actually made. Target: wall time within 110 % of it, no 429 beyond the first burst; then again with 20 %
injected faults (429, 5xx, timeouts, truncated JSON, expired tokens), every order stored exactly once.

The script creates and drops its own database on 127.0.0.1:5432, uses the machine's Redis, serves the
simulator under uvicorn on a free local port (its own thread), and runs the real sync engine
(archive + upserts + per-page commits) in this process.

    .venv/bin/python bench/sync.py [--orders 10000] [--fault-rate 0.2]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.migrate import execute_as_admin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from acorn_api.amazon import sync  # noqa: E402
from acorn_api.amazon.client import RetryPolicy  # noqa: E402
from acorn_api.amazon.lwa import LwaTokenCache  # noqa: E402
from acorn_api.core.db import Resources, make_engine, make_sessionmaker  # noqa: E402
from acorn_api.main import create_app  # noqa: E402
from acorn_api.migrate import upgrade  # noqa: E402
from acorn_api.settings import Settings  # noqa: E402
from acorn_sim import FaultConfig, SimulatorConfig  # noqa: E402

RATE, BURST = 10.0, 10
ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def theoretical_minimum(calls: int, rate: float = RATE, burst: int = BURST) -> float:
    """Seconds from the first call to the start of the last one, at best, under a token bucket."""
    return max(calls - burst, 0) / rate


@contextlib.asynccontextmanager
async def simulator(config: SimulatorConfig) -> AsyncIterator[str]:
    """The simulator in its own process (as Amazon is), so its CPU does not compete with the connector's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    code = (
        "import sys; from acorn_sim import SimulatorConfig, create_simulator_app; import uvicorn; "
        "uvicorn.run(create_simulator_app(SimulatorConfig.model_validate_json(sys.argv[1])), host='127.0.0.1', "
        f"port={port}, log_level='warning')"
    )
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-c", code, config.model_dump_json()],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get(f"http://127.0.0.1:{port}/_simulator/stats")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(15)


CONNECTION = {
    "region": "NA",
    "marketplaces": ["US"],
    "vendor_codes": ["ACME1", "ACME2"],
    "client_id": "sim-client",
    "client_secret": "sim-secret",
    "refresh_token": "Atzr|sim-refresh",
}


@dataclass
class Phase:
    label: str
    status: str | None
    wall: float
    cpu: float
    run: dict[str, Any]
    stats: dict[str, Any]
    rows: int
    distinct: int
    load: float = 0.0


async def phase(
    label: str,
    *,
    orders: int,
    faults: FaultConfig,
    retry: RetryPolicy,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    api: httpx.AsyncClient,
) -> Phase:
    """Sync ``orders`` purchase orders into a fresh account (so "exactly once" is checked from zero)."""
    from acorn_api.accounts.service import create_account

    async with sessionmaker() as session:
        account = await create_account(session, settings, name=f"Bench {label}")
        await session.commit()
    headers = {"Authorization": f"Bearer {account.secret}"}
    config = SimulatorConfig(seed=5, purchase_orders=orders, history_days=7, anchor=ANCHOR, faults=faults)
    async with simulator(config) as sim_url, httpx.AsyncClient() as http:
        r = await api.post("/v1/connections", json={**CONNECTION, "name": label, "endpoint": sim_url}, headers=headers)
        r.raise_for_status()
        body = {"kind": "orders", "from": (ANCHOR - timedelta(days=7)).isoformat(), "to": ANCHOR.isoformat()}
        run = (await api.post(f"/v1/connections/{r.json()['id']}/syncs", json=body, headers=headers)).json()
        ctx = sync.SyncContext(
            settings=settings,
            sessionmaker=sessionmaker,
            redis=redis,
            http=http,
            token_cache=LwaTokenCache(),
            retry=retry,
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        status = await sync.execute(ctx, account.account.id, uuid.UUID(run["id"]))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        final = (await api.get(f"/v1/sync-runs/{run['id']}", headers=headers)).json()
        stats = (await http.get(sim_url + "/_simulator/stats")).json()
    async with sessionmaker() as session:
        rows, distinct = (
            await session.execute(
                text(
                    "SELECT count(*), count(DISTINCT purchase_order_number) FROM purchase_orders "
                    "WHERE account_id = :account"
                ),
                {"account": account.account.id},
            )
        ).one()
    return Phase(label, status, wall, cpu, final, stats, int(rows), int(distinct))


def report(result: Phase, expected: int) -> str:
    calls = result.stats["requests"].get("getPurchaseOrders", 0)
    minimum = theoretical_minimum(calls)
    injected = result.stats["faults"].get("throttle", 0)
    return (
        f"  {result.label:<11} {result.status or '-':<10} wall {result.wall:6.2f} s   minimum {minimum:5.2f} s   "
        f"ratio {result.wall / minimum if minimum else float('nan'):5.3f}   "
        f"{result.run['fetched'] / result.wall:5.0f} POs/s   connector CPU {result.cpu:5.2f} s\n"
        f"              api calls {result.run['api_calls']} (simulator saw {calls})   "
        f"429s {result.stats['throttled']} (rate limit {result.stats['throttled'] - injected}, injected {injected})   "
        f"retries {result.run['retries']}   injected faults {sum(result.stats['faults'].values())}   "
        f"stored {result.rows} rows, {result.distinct} distinct, expected {expected}"
    )


async def bench(args: argparse.Namespace) -> None:
    name = f"acorn_bench_sync_{os.getpid()}_{secrets.token_hex(3)}"
    await execute_as_admin(args.database_url, f'CREATE DATABASE "{name}"')
    database_url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    tag = secrets.token_hex(3)
    settings = Settings(
        environment="test",
        database_url=database_url,
        redis_url=args.redis_url,
        arq_queue_name=f"acorn-bench-{tag}:queue",
        redis_key_prefix=f"acorn-bench-{tag}",
        log_json=False,
        log_level="WARNING",
        rate_limit_enabled=False,
        spapi_allowed_hosts=["127.0.0.1"],  # the simulator it starts
    )
    redis = await create_pool(RedisSettings.from_dsn(args.redis_url), default_queue_name=settings.arq_queue_name)
    engine = make_engine(settings)
    try:
        await asyncio.to_thread(upgrade, database_url, "heads")
        sessionmaker = make_sessionmaker(engine)
        app = create_app(settings, resources=Resources(engine=engine, sessionmaker=sessionmaker, redis=redis))
        common: dict[str, Any] = {"settings": settings, "sessionmaker": sessionmaker, "redis": redis}
        fault_mix = FaultConfig(
            throttle=args.fault_rate * 0.3,
            server_error=args.fault_rate * 0.25,
            timeout=args.fault_rate * 0.15,
            truncated_json=args.fault_rate * 0.15,
            expired_token=args.fault_rate * 0.15,
            timeout_seconds=1.5,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as api:
            # warm-up: connections, prepared statements and caches, as a long-running worker has them
            await phase("warm-up", orders=1000, faults=FaultConfig(), retry=RetryPolicy(), api=api, **common)
            cleans = []
            for round_ in range(args.rounds):
                cleans.append(
                    await phase(
                        f"clean #{round_ + 1}",
                        orders=args.orders,
                        faults=FaultConfig(),
                        retry=RetryPolicy(),
                        api=api,
                        **common,
                    )
                )
                cleans[-1].load = os.getloadavg()[0]
            faulty = await phase(
                f"{args.fault_rate:.0%} faults",
                orders=args.orders,
                faults=fault_mix,
                retry=RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=2.0, timeout=1.0),
                api=api,
                **common,
            )
        print(
            f"\nsync bench: {args.orders} purchase orders, includeDetails, 100 per page, "
            f"getPurchaseOrders {RATE:g}/s burst {BURST}; minimum = (calls - burst) / rate"
        )
        for clean in cleans:
            print(report(clean, args.orders))
        print(report(faulty, args.orders))
        ratios = sorted(c.wall / theoretical_minimum(c.stats["requests"]["getPurchaseOrders"]) for c in cleans)
        print(
            f"  clean ratio over {len(ratios)} round(s): best {ratios[0]:.3f}, median {ratios[len(ratios) // 2]:.3f}; "
            f"1-min load average at each round's end: {', '.join(f'{c.load:.1f}' for c in cleans)}"
        )
    finally:
        await engine.dispose()
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}*")]
        keys += [k async for k in redis.scan_iter(match=f"{settings.arq_queue_name}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await execute_as_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3, help="clean runs (the machine is shared: take the spread)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
