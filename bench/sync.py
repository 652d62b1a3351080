"""Connector throughput: sync 10,000 purchase orders from the SP-API simulator at Amazon's documented rate.

getPurchaseOrders allows 10 requests/s with a burst of 10. With ``includeDetails`` and 100 orders per page,
10,000 orders created inside one 7-day window are 100 pages, each needing the previous page's ``nextToken``.
The fastest any client can go: the first ``burst`` calls at once, then one every ``1/rate`` s, so the last call
starts at ``(calls - burst) / rate`` s (9.0 s for 100 calls) — the theoretical minimum, computed from the calls
actually made. Target: wall time within 110 % of it, no 429 beyond the first burst; then again with 20 %
injected faults (429, 5xx, timeouts, truncated JSON, expired tokens), every order stored exactly once.

Besides the wall time, each round reports the **connector's CPU seconds** (the process running the engine:
``time.process_time()`` around the sync, every thread of it included, so gzip in a worker thread counts) per
10,000 purchase orders, and the simulator's (its own process, read from ``/proc/<pid>/stat``). The CPU figure
barely moves with the machine's load; the wall-time ratio does (two cores shared with the simulator and
PostgreSQL: a page may take 100 ms in total).

The script creates and drops its own database on 127.0.0.1:5432 and uses the machine's Redis (keys under a
unique prefix, removed afterwards). Every round runs in a fresh engine process (``--child``) that warms up on
1,000 orders (connections, prepared statements, caches, as a long-running worker has them) and then syncs
``--orders`` into a fresh account, so "stored exactly once" is checked from zero; the simulator runs under
uvicorn in its own process (Amazon is not in ours), always from this tree. With ``--before-src`` (another tree's
``src/``, e.g. main's: ``git archive main src | tar -x -C /tmp/sync-before``) the engine of that tree runs too,
round by round interleaved with this one, so before and after come from the same run.

    .venv/bin/python bench/sync.py [--orders 10000] [--rounds 3] [--fault-rate 0.2] [--before-src DIR]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("ACORN_BENCH_CHILD"):  # a child gets its tree through PYTHONPATH (before or after)
    sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from acorn_api.migrate import execute_as_admin, upgrade  # noqa: E402

RATE, BURST = 10.0, 10
WARM_UP_ORDERS = 1000
ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def theoretical_minimum(calls: int, rate: float = RATE, burst: int = BURST) -> float:
    """Seconds from the first call to the start of the last one, at best, under a token bucket."""
    return max(calls - burst, 0) / rate


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextlib.asynccontextmanager
async def simulator(config: Any) -> AsyncIterator[tuple[str, int]]:
    """The simulator in its own process (as Amazon is), so its CPU does not compete with the connector's GIL."""
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
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},  # the same simulator for every engine measured
        stdout=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get(f"http://127.0.0.1:{port}/_simulator/stats")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", process.pid
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
    variant: str
    label: str
    status: str | None
    wall: float
    cpu: float
    kernel_cpu: float
    gc_cpu: float
    sim_cpu: float
    fetched: int
    api_calls: int
    retries: int
    stats: dict[str, Any]
    rows: int
    distinct: int
    load: float = 0.0

    @property
    def calls(self) -> int:
        return int(self.stats["requests"].get("getPurchaseOrders", 0))

    @property
    def ratio(self) -> float:
        minimum = theoretical_minimum(self.calls)
        return self.wall / minimum if minimum else float("nan")

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu * 10_000 / self.fetched if self.fetched else float("nan")

    @property
    def sim_cpu_per_10k(self) -> float:
        return self.sim_cpu * 10_000 / self.fetched if self.fetched else float("nan")


# ---------------------------------------------------------------- the engine process (one per round and tree)


async def run_phase(
    label: str, *, orders: int, faults: Any, retry: Any, worker: dict[str, Any], api: httpx.AsyncClient
) -> Phase:
    """Sync ``orders`` purchase orders into a fresh account (so "exactly once" is checked from zero), through the
    worker's own job function with the resources its startup opened."""
    from acorn_api.accounts.service import create_account
    from acorn_api.amazon import jobs
    from acorn_sim import SimulatorConfig

    settings, sessionmaker = worker["settings"], worker["sessionmaker"]
    async with sessionmaker() as session:
        account = await create_account(session, settings, name=f"Bench {label}")
        await session.commit()
    headers = {"Authorization": f"Bearer {account.secret}"}
    config = SimulatorConfig(seed=5, purchase_orders=orders, history_days=7, anchor=ANCHOR, faults=faults)
    async with simulator(config) as (sim_url, sim_pid), httpx.AsyncClient() as http:
        r = await api.post("/v1/connections", json={**CONNECTION, "name": label, "endpoint": sim_url}, headers=headers)
        r.raise_for_status()
        body = {"kind": "orders", "from": (ANCHOR - timedelta(days=7)).isoformat(), "to": ANCHOR.isoformat()}
        run = (await api.post(f"/v1/connections/{r.json()['id']}/syncs", json=body, headers=headers)).json()
        worker[jobs.SYNC_OPTIONS_KEY] = {"retry": retry}
        gc_cpu = [0.0, 0.0]

        def gc_timer(phase: str, _info: dict[str, Any]) -> None:
            if phase == "start":
                gc_cpu[1] = time.process_time()
            else:
                gc_cpu[0] += time.process_time() - gc_cpu[1]

        gc.callbacks.append(gc_timer)
        sim_started = process_cpu(sim_pid)
        started, cpu_started, usage = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        status = await jobs.run_sync(worker, str(account.account.id), run["id"])
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - usage.ru_stime
        sim_cpu = process_cpu(sim_pid) - sim_started
        gc.callbacks.remove(gc_timer)
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
    return Phase(
        "",
        label,
        status,
        wall,
        cpu,
        kernel,
        gc_cpu[0],
        sim_cpu,
        int(final["fetched"]),
        int(final["api_calls"]),
        int(final["retries"]),
        stats,
        int(rows),
        int(distinct),
    )


async def child(spec: dict[str, Any]) -> Phase:
    """One engine process, set up as ``acorn-api worker`` sets itself up (``worker.startup``)."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from acorn_api import worker as worker_module
    from acorn_api.amazon.client import RetryPolicy
    from acorn_api.core.db import Resources, make_engine, make_sessionmaker
    from acorn_api.main import create_app
    from acorn_api.settings import Settings
    from acorn_sim import FaultConfig

    tag = secrets.token_hex(3)
    settings = Settings(
        environment="test",
        database_url=spec["database_url"],
        redis_url=spec["redis_url"],
        arq_queue_name=f"acorn-bench-{tag}:queue",
        redis_key_prefix=f"acorn-bench-{tag}",
        log_json=False,
        log_level="WARNING",
        rate_limit_enabled=False,
        spapi_allowed_hosts=["127.0.0.1"],  # the simulator it starts
    )
    redis = await create_pool(RedisSettings.from_dsn(spec["redis_url"]), default_queue_name=settings.arq_queue_name)
    worker: dict[str, Any] = {"settings": settings, "redis": redis}
    api_engine = None
    try:
        # the API that creates the connection and the run lives in this process too (through ASGITransport):
        # built first, so what the worker's startup does to the heap applies to it as well
        api_engine = make_engine(settings)
        api_app = create_app(
            settings, resources=Resources(engine=api_engine, sessionmaker=make_sessionmaker(api_engine), redis=redis)
        )
        await worker_module.startup(worker)
        rate = spec["fault_rate"]
        faults = (
            FaultConfig(
                throttle=rate * 0.3,
                server_error=rate * 0.25,
                timeout=rate * 0.15,
                truncated_json=rate * 0.15,
                expired_token=rate * 0.15,
                timeout_seconds=1.5,
            )
            if rate
            else FaultConfig()
        )
        retry = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=2.0, timeout=1.0) if rate else RetryPolicy()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url="http://bench") as api:
            await run_phase(
                "warm-up", orders=WARM_UP_ORDERS, faults=FaultConfig(), retry=RetryPolicy(), worker=worker, api=api
            )
            result = await run_phase(
                spec["label"], orders=spec["orders"], faults=faults, retry=retry, worker=worker, api=api
            )
        result.load = os.getloadavg()[0]
        return result
    finally:
        await worker_module.shutdown(worker)
        if api_engine is not None:
            await api_engine.dispose()
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}*")]
        keys += [k async for k in redis.scan_iter(match=f"{settings.arq_queue_name}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


# ---------------------------------------------------------------- the driver


def run_child(variant: str, src: Path, spec: dict[str, Any]) -> Phase:
    env = {**os.environ, "ACORN_BENCH_CHILD": "1", "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{variant} engine failed:\n{out.stderr[-4000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["variant"] = variant
    return Phase(**data)


def report(result: Phase, expected: int) -> str:
    injected = result.stats["faults"].get("throttle", 0)
    return (
        f"  {result.variant:<7} {result.label:<11} {result.status or '-':<10} wall {result.wall:6.2f} s   "
        f"minimum {theoretical_minimum(result.calls):5.2f} s   ratio {result.ratio:5.3f}   "
        f"{result.fetched / result.wall:5.0f} POs/s   load {result.load:4.1f}\n"
        f"{'':10}connector CPU {result.cpu:5.2f} s = {result.cpu_per_10k:5.2f} s per 10,000 POs "
        f"(in the kernel {result.kernel_cpu:4.2f} s, garbage collector {result.gc_cpu:4.2f} s)   "
        f"simulator CPU {result.sim_cpu_per_10k:5.2f} s per 10,000 POs\n"
        f"{'':10}api calls {result.api_calls} (simulator saw {result.calls})   "
        f"429s {result.stats['throttled']} (rate limit {result.stats['throttled'] - injected}, injected {injected})   "
        f"retries {result.retries}   injected faults {sum(result.stats['faults'].values())}   "
        f"stored {result.rows} rows, {result.distinct} distinct, expected {expected}"
    )


def spread(values: list[float], fmt: str) -> str:
    return f"median {statistics.median(values):{fmt}} (range {min(values):{fmt}}–{max(values):{fmt}})"


def bench(args: argparse.Namespace) -> None:
    name = f"acorn_bench_sync_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(execute_as_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    database_url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    trees = {"after": ROOT / "src"}
    if args.before_src:
        trees = {"before": Path(args.before_src).resolve(), **trees}
    try:
        upgrade(database_url, "heads")
        base = {"database_url": database_url, "redis_url": args.redis_url, "orders": args.orders}
        cleans: list[Phase] = []
        for round_ in range(args.rounds):
            for variant, src in trees.items():
                spec = {**base, "label": f"clean #{round_ + 1}", "fault_rate": 0.0}
                cleans.append(run_child(variant, src, spec))
                print(report(cleans[-1], args.orders), flush=True)
        faulty = None
        if args.fault_rate:
            spec = {**base, "label": f"{args.fault_rate:.0%} faults", "fault_rate": args.fault_rate}
            faulty = run_child("after", trees["after"], spec)
            print(report(faulty, args.orders), flush=True)
    finally:
        asyncio.run(execute_as_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(
        f"\nsync bench: {args.orders} purchase orders, includeDetails, 100 per page, "
        f"getPurchaseOrders {RATE:g}/s burst {BURST}; minimum = (calls - burst) / rate; "
        f"{args.rounds} clean round(s) per engine, interleaved"
    )
    for variant in trees:
        mine = [c for c in cleans if c.variant == variant]
        print(
            f"  {variant:<7} wall / minimum {spread([c.ratio for c in mine], '.3f')}   "
            f"connector CPU per 10,000 POs {spread([c.cpu_per_10k for c in mine], '.2f')} s   "
            f"simulator CPU per 10,000 POs {spread([c.sim_cpu_per_10k for c in mine], '.2f')} s"
        )
    if len(trees) == 2:
        before = statistics.median(c.cpu_per_10k for c in cleans if c.variant == "before")
        after = statistics.median(c.cpu_per_10k for c in cleans if c.variant == "after")
        print(f"  connector CPU after / before: {after / before:.2f}")
    print(f"  1-minute load average at each round's end: {', '.join(f'{c.load:.1f}' for c in cleans)}")
    if faulty is not None:
        print(f"  {faulty.label}: ratio {faulty.ratio:.3f}, stored {faulty.rows} rows, {faulty.distinct} distinct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.2, help="0 skips the round with injected faults")
    parser.add_argument("--rounds", type=int, default=3, help="clean runs per engine (the machine is shared)")
    parser.add_argument("--before-src", help="another source tree's src/ whose engine runs as 'before', interleaved")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(child(json.loads(args.child)))
        print(json.dumps({k: v for k, v in asdict(result).items() if k != "variant"}))
        return
    bench(args)


if __name__ == "__main__":
    main()
