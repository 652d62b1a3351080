"""Webhook delivery: 10,000 events to 10 endpoints on a local receiver, through the real path.

The real path: a domain's transaction records events (``webhooks.events.record``) and commits; the
after-commit job dispatch sends one ``deliver_event`` job per event to Redis; an arq worker (``acorn-api
worker``, its own process) fans each event out to the subscribed endpoints (``webhook_deliveries`` rows),
claims them, POSTs them signed through the SSRF-guarded client, and records every attempt.

Measured, per round:

* **receiver capacity** — POSTs per second the receiver (a minimal ASGI app under uvicorn, its own
  process) takes from a plain httpx client with 64 requests in flight: the ceiling for any sender here;
* **delivery throughput** — deliveries (event × endpoint, each answered 2xx and recorded) per second, from
  the first event's commit to the last delivery's arrival;
* **lag** — from an event's commit (taken in this process right after ``COMMIT``) to its arrival at the
  receiver (taken by the receiver), p50 and p99 over all deliveries. Same machine, same clock.

Events are produced as fast as the producer can commit them (transactions of 100), so lag includes any
queueing behind the producer: it is the lag under a burst, not of a lone event.

    .venv/bin/python bench/webhooks.py [--events 10000] [--endpoints 10] [--rounds 3] [--workers 1]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from acorn_api.accounts.service import create_account  # noqa: E402
from acorn_api.amazon import crypto  # noqa: E402
from acorn_api.core.db import make_engine, make_sessionmaker  # noqa: E402
from acorn_api.core.jobs import flush_pending_jobs  # noqa: E402
from acorn_api.migrate import scratch_database  # noqa: E402
from acorn_api.settings import Settings  # noqa: E402
from acorn_api.webhooks.events import EventType, record  # noqa: E402
from acorn_api.webhooks.models import WebhookEndpoint  # noqa: E402
from acorn_api.webhooks.signing import new_secret  # noqa: E402

RECEIVER = r"""
import sys, time, orjson, uvicorn
seen = []

async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        event_id = next((v for k, v in scope["headers"] if k == b"acorn-event-id"), b"").decode()
        if event_id:
            seen.append((event_id, scope["path"], time.time()))
        body = b"ok"
    elif scope["path"] == "/dump":
        body = orjson.dumps(seen)
        seen.clear()
    else:
        body = orjson.dumps(len(seen))
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            timeout_keep_alive=120, backlog=4096)
"""


JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def wait_until_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def receiver_capacity(base: str, requests: int, concurrency: int, body: bytes) -> float:
    """POSTs/s the receiver answers with ``concurrency`` in flight from one httpx client."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        left = requests

        async def one() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                try:
                    r = await client.post(
                        base + "/capacity", content=body, headers={"Content-Type": "application/json"}
                    )
                    r.raise_for_status()
                except httpx.TransportError:  # a dropped connection under load: that request is not counted
                    left += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        await client.get(base + "/dump")
    return requests / elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def one_round(
    settings: Settings, redis: ArqRedis, base: str, events: int, endpoints: int, patience: float
) -> dict[str, Any]:
    engine = make_engine(settings, pool_size=4, max_overflow=0)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        account = (await create_account(session, settings, name=f"bench {uuid.uuid4().hex[:6]}")).account
        for i in range(endpoints):
            session.add(
                WebhookEndpoint(
                    account_id=account.id,
                    url=f"{base}/e{i}",
                    event_types=["*"],
                    secret_encrypted=crypto.encrypt(settings, new_secret()),
                )
            )
        await session.commit()

    data = {"id": str(uuid.uuid4()), "status": "approved", "cost_price": "12.50", "currency": "USD", "note": "x" * 200}
    committed: dict[str, float] = {}
    job_ids: list[str] = []
    started = time.time()
    batch = 100
    for offset in range(0, events, batch):
        async with sessionmaker() as session:
            made = [
                record(session, account.id, EventType.quote_approved, data) for _ in range(min(batch, events - offset))
            ]
            await session.commit()
            at = time.time()
            await flush_pending_jobs(session, redis)
        for event in made:
            committed[str(event.id)] = at
            job_ids.append(f"deliver_event:{event.id}")
    produced = time.time() - started

    expected = events * endpoints
    arrivals: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + patience
    async with httpx.AsyncClient() as client:
        while True:
            arrivals.extend(tuple(x) for x in (await client.get(base + "/dump")).json())
            if len({(e, p) for e, p, _ in arrivals}) >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    await engine.dispose()
    for chunk in range(0, len(job_ids), 500):
        await redis.delete(*[f"arq:result:{j}" for j in job_ids[chunk : chunk + 500]])

    ours = [(e, p, t) for e, p, t in arrivals if e in committed]
    distinct = {(e, p) for e, p, _ in ours}
    lags = [t - committed[e] for e, _, t in ours]
    last = max(t for _, _, t in ours) if ours else time.time()
    return {
        "delivered": len(distinct),
        "expected": expected,
        "duplicates": len(ours) - len(distinct),
        "produce_s": produced,
        "produce_rate": events / produced,
        "elapsed_s": last - started,
        "throughput": len(distinct) / (last - started),
        "lag_p50": percentile(lags, 0.50) if lags else float("nan"),
        "lag_p99": percentile(lags, 0.99) if lags else float("nan"),
        "load": os.getloadavg()[0],
    }


def main(args: argparse.Namespace) -> None:
    with scratch_database(args.database_url, prefix="acorn_bench_webhooks") as url:
        asyncio.run(run(args, url))


async def run(args: argparse.Namespace, url: str) -> None:
    queue = f"bench-webhooks-{secrets.token_hex(4)}:queue"
    settings = Settings(
        environment="test",  # the receiver is on 127.0.0.1: loopback is allowed in development/test only
        database_url=url,
        redis_url=args.redis_url,
        arq_queue_name=queue,
        log_json=False,
        log_level="WARNING",
    )
    assert settings.redis_url
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url), default_queue_name=queue)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ACORN_ENVIRONMENT": "test",
        "ACORN_DATABASE_URL": url,
        "ACORN_REDIS_URL": settings.redis_url,
        "ACORN_ARQ_QUEUE_NAME": queue,
        "ACORN_LOG_LEVEL": "WARNING",
        "ACORN_LOG_JSON": "false",
    }
    payload = b'{"id":"' + str(uuid.uuid4()).encode() + b'","type":"quote.approved","data":{"x":"' + b"x" * 300 + b'"}}'
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([sys.executable, "-c", RECEIVER, str(port)], env))
        await wait_until_up(base + "/count")
        for _ in range(args.workers):
            stack.enter_context(process([sys.executable, "-m", "acorn_api.cli", "worker"], env))
        await asyncio.sleep(3)  # workers connect and run their startup crons
        for n in range(args.rounds):
            capacity = await receiver_capacity(base, args.capacity_requests, 64, payload)
            result = await one_round(settings, redis, base, args.events, args.endpoints, args.patience)
            result["capacity"] = capacity
            results.append(result)
            print(
                f"round {n + 1}: receiver {capacity:,.0f}/s"
                f" | delivered {result['delivered']:,}/{result['expected']:,}"
                f" (+{result['duplicates']} dup) in {result['elapsed_s']:.1f} s = {result['throughput']:,.0f}/s"
                f" ({result['throughput'] / capacity:.0%} of receiver) | lag p50 {result['lag_p50']:.2f} s"
                f" p99 {result['lag_p99']:.2f} s | produced {result['produce_rate']:,.0f} events/s"
                f" | load {result['load']:.2f}",
                flush=True,
            )
    await redis.aclose()

    def summary(key: str, fmt: str) -> str:
        values = [r[key] for r in results]
        low, high = format(min(values), fmt), format(max(values), fmt)
        return f"median {format(statistics.median(values), fmt)} (range {low}–{high})"

    print(f"\n{args.events:,} events × {args.endpoints} endpoints, {args.workers} worker(s), {len(results)} rounds")
    print(f"receiver capacity     {summary('capacity', ',.0f')} POST/s")
    print(f"delivery throughput   {summary('throughput', ',.0f')} deliveries/s")
    ratios = [r["throughput"] / r["capacity"] for r in results]
    print(f"throughput / capacity median {statistics.median(ratios):.1%} (range {min(ratios):.1%}–{max(ratios):.1%})")
    print(f"lag p50               {summary('lag_p50', '.2f')} s")
    print(f"lag p99               {summary('lag_p99', '.2f')} s")
    loads = ", ".join(f"{r['load']:.2f}" for r in results)
    print(f"1-min load average    {loads}")
    if any(r["delivered"] < r["expected"] for r in results):
        print("INCOMPLETE: some deliveries did not arrive within the timeout")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--capacity-requests", type=int, default=10_000)
    parser.add_argument("--patience", type=float, default=900.0, help="seconds to wait for a round's deliveries")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ACORN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("ACORN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    main(parser.parse_args())
