"""What authentication costs: requests/s of ``GET /v1/stores/{id}`` with a JWT and with an API key, against the
same endpoint with authentication bypassed (a dependency override returning a fixed Caller), in one run.

Real uvicorn (one worker) on 127.0.0.1, wrk as the load generator when installed (``apt-get install wrk``),
else an asyncio/httpx generator. The authenticated runs include everything a request pays for: bearer
parsing, the credential cache or token verification, and the rate limiter's one Redis round trip (limits
raised so that nothing is refused). The script creates and drops its own database.

    .venv/bin/python bench/auth.py [--duration 6] [--connections 32] [--rounds 5]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx

from acorn_api.migrate import scratch_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BIG_LIMIT = 1_000_000_000


# --- the server side (run as a subprocess) ------------------------------------------------------------------


def serve(mode: str, port: int) -> None:
    import uvicorn

    if mode == "auth-no-limiter":
        os.environ["ACORN_RATE_LIMIT_ENABLED"] = "false"
    from acorn_api.accounts.auth import Caller, current_caller
    from acorn_api.accounts.scopes import ROLE_SCOPES, Role
    from acorn_api.main import create_app

    app = create_app()
    if mode == "baseline":
        fixed = Caller(
            account_id=uuid.UUID(os.environ["BENCH_ACCOUNT_ID"]),
            credential_id=uuid.uuid4(),
            credential_type="api_key",
            scopes=ROLE_SCOPES[Role.admin],
            role="admin",
        )

        def bypass() -> Caller:
            return fixed

        app.dependency_overrides[current_caller] = bypass
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)


# --- the driver --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p99_ms: float
    errors: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(mode: str, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(port)], env=env, start_new_session=True
    )
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
                raise RuntimeError(f"{mode} server did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> Result:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(rps, p99, int(bad.group(1)) if bad else 0)


async def _python_load(url: str, headers: dict[str, str], duration: int, connections: int) -> Result:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async with httpx.AsyncClient(headers=headers, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop:
                started = time.perf_counter()
                r = await client.get(url)
                latencies.append(time.perf_counter() - started)
                errors += r.status_code != 200

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return Result(len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1000, errors)


def load(url: str, headers: dict[str, str], duration: int, connections: int) -> Result:
    if shutil.which("wrk"):
        return _wrk(url, headers, duration, connections)
    return asyncio.run(_python_load(url, headers, duration, connections))


def _seed(base: str, admin_key: str) -> tuple[str, str, str]:
    """A store to read, an admin API key and a JWT of an admin OAuth client — all through the API."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base, headers=headers) as c:
        store = c.post(
            "/v1/stores",
            json={
                "code": "BENCH-1",
                "name": "Bench DC",
                "region": "NA",
                "marketplace": "US",
                "country": "US",
                "currency": "USD",
                "timezone": "America/New_York",
                "vendor_codes": ["BENCH"],
            },
        )
        store.raise_for_status()
        client = c.post("/v1/oauth-clients", json={"name": "bench", "role": "admin"}).json()
        token = httpx.post(
            base + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        token.raise_for_status()
    return store.json()["id"], admin_key, token.json()["access_token"]


async def _component_costs(
    database_url: str, redis_url: str, prefix: str, api_key: str, token: str
) -> dict[str, float]:
    """CPU µs per call of each piece authentication adds, 32 concurrent callers (robust to a busy machine,
    unlike req/s): the bearer → Caller step for each credential kind (cache warm) and the limiter's call."""
    from starlette.requests import Request

    from acorn_api.accounts.auth import authenticate
    from acorn_api.core.db import make_engine, make_sessionmaker
    from acorn_api.core.ratelimit import Bucket, rate_limiter
    from acorn_api.settings import Settings

    settings = Settings(database_url=database_url, redis_url=redis_url, redis_key_prefix=prefix)
    engine = make_engine(settings, pool_size=2)
    sessions = make_sessionmaker(engine)
    limiter = rate_limiter(redis_url, prefix)
    bucket = Bucket(limiter.key("bench"), BIG_LIMIT)

    def request(secret: str) -> Request:
        app = SimpleNamespace(state=SimpleNamespace(resources=None))  # authenticate reads app.state.resources
        scope = {"type": "http", "headers": [(b"authorization", f"Bearer {secret}".encode())], "state": {}, "app": app}
        return Request(scope)

    async def cpu_per_call(call: Callable[[], Awaitable[object]], n: int = 4000) -> float:
        await call()
        started = time.process_time()

        async def worker() -> None:
            for _ in range(n // 32):
                await call()

        await asyncio.gather(*(worker() for _ in range(32)))
        return (time.process_time() - started) / n * 1e6

    costs: dict[str, float] = {}
    async with sessions() as session:
        for _ in range(3):  # keep the best of three: the least disturbed by other processes
            for name, call in (
                ("API key → Caller (cache warm)", lambda: authenticate(request(api_key), session, settings)),
                ("JWT → Caller (cache warm)", lambda: authenticate(request(token), session, settings)),
                ("rate limiter, one Redis call", lambda: limiter.hit(bucket)),
            ):
                cost = await cpu_per_call(call)
                costs[name] = min(cost, costs.get(name, cost))
    await engine.dispose()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=["auth", "baseline", "auth-no-limiter"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=6, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="measure each mode this many times, interleaved")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ACORN_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("ACORN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    from acorn_api.cli import _create_account
    from acorn_api.settings import Settings

    prefix = f"acorn-bench-{secrets.token_hex(4)}"
    with (
        scratch_database(args.database_url, prefix="acorn_bench_auth") as database_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            **os.environ,
            "ACORN_ENVIRONMENT": "development",
            "ACORN_DATABASE_URL": database_url,
            "ACORN_REDIS_URL": args.redis_url,
            "ACORN_REDIS_KEY_PREFIX": prefix,
            "ACORN_JWT_KEYS_FILE": str(Path(tmp) / "jwt.pem"),
            "ACORN_LOG_LEVEL": "WARNING",
            "ACORN_RATE_LIMITS_PER_MINUTE": json.dumps(
                dict.fromkeys(("admin", "purchasing", "operations", "finance", "viewer", "scoped"), BIG_LIMIT)
            ),
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("ACORN_")})
        created = asyncio.run(_create_account(Settings(), "Bench Vendor"))
        env["BENCH_ACCOUNT_ID"] = created["account_id"]
        with _server("auth", env) as base:
            store_id, api_key, token = _seed(base, created["api_key"])
        path = f"/v1/stores/{store_id}"
        modes = {
            "baseline (auth bypassed)": ("baseline", {}),
            "JWT access token": ("auth", {"Authorization": f"Bearer {token}"}),
            "API key": ("auth", {"Authorization": f"Bearer {api_key}"}),
            # Diagnostic: where the cost goes (the limiter's Redis round trip vs the rest).
            "API key, limiter off": ("auth-no-limiter", {"Authorization": f"Bearer {api_key}"}),
        }
        results: dict[str, list[Result]] = {name: [] for name in modes}
        print(
            f"GET {path}, {args.connections} connections, {args.duration}s x {args.rounds} rounds, "
            f"load generator: {'wrk' if shutil.which('wrk') else 'python/httpx'}"
        )
        for _ in range(args.rounds):
            for server_mode in ("baseline", "auth", "auth-no-limiter"):
                with _server(server_mode, env) as base:
                    for name, (mode, headers) in modes.items():
                        if mode != server_mode:
                            continue
                        load(base + path, headers, 2, args.connections)  # warm up caches and connections
                        results[name].append(load(base + path, headers, args.duration, args.connections))
        costs = asyncio.run(_component_costs(database_url, args.redis_url, prefix, api_key, token))
        with contextlib.suppress(Exception):
            import redis

            r = redis.Redis.from_url(args.redis_url)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)

    # Rounds run minutes apart on a shared machine: compare each mode with the baseline of its own round and
    # report the median of those ratios, which shrugs off a round disturbed by other work.
    baselines = [r.rps for r in results["baseline (auth bypassed)"]]
    print(f"\n{'mode':28} {'req/s':>9} {'p99 ms':>8} {'non-2xx':>8} {'vs baseline':>12} {'auth cost':>10}  per round")
    for name, runs in results.items():
        ratios = [run.rps / base for run, base in zip(runs, baselines, strict=True)]
        ratio = statistics.median(ratios)
        rps = statistics.median(r.rps for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        errors = sum(r.errors for r in runs)
        rounds = " ".join(f"{x:.0%}" for x in ratios)
        print(f"{name:28} {rps:9.0f} {p99:8.2f} {errors:8d} {ratio:11.1%} {1 - ratio:10.1%}  {rounds}")
    per_request_us = 1e6 / statistics.median(baselines)
    print(f"\nCPU per call of what authentication adds (baseline request: {per_request_us:.0f} µs of wall time):")
    for name, cost in costs.items():
        print(f"  {name:32} {cost:7.1f} µs")


if __name__ == "__main__":
    main()
