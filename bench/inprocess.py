"""CPU per request of the request path alone: the ASGI app called in-process (no HTTP, no uvicorn, no wrk).

Runs against a database seeded and kept by ``bench/api.py --reuse-database NAME`` (it reads the API key and ids
recorded there). Concurrent tasks call the app with hand-built scopes; prints the process's CPU time per request
(best of 3), or with ``--callgrind`` re-runs itself under ``valgrind --tool=callgrind`` and prints instructions per
request — counted only between ``callgrind_control --zero`` and ``--dump`` around the measured requests, so start-up
and warm-up are excluded, and a busy machine does not change the count.

    .venv/bin/python bench/inprocess.py --database acorn_bench_api_kept
    .venv/bin/python bench/inprocess.py --database acorn_bench_api_kept --callgrind --requests 100 --concurrency 8
    .venv/bin/python bench/inprocess.py --database acorn_bench_api_kept --src /tmp/acorn-before/src   # another tree
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]


async def call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> None:
    parts = urlsplit(path)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status[0] != 200:
        raise RuntimeError(f"{path} answered {status[0]}")


async def run(app: Any, path: str, headers: list[tuple[bytes, bytes]], requests: int, concurrency: int) -> None:
    todo = iter(range(requests))

    async def worker() -> None:
        for _ in todo:
            await call(app, path, headers)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def control(*args: str) -> None:
    """Ask callgrind (running this process) to zero or dump its counters; keep the loop alive meanwhile."""
    proc = await asyncio.create_subprocess_exec("callgrind_control", *args, str(os.getpid()), stdout=subprocess.DEVNULL)
    await proc.wait()


async def drive(endpoints: dict[str, str], api_key: str, requests: int, concurrency: int, callgrind: bool) -> None:
    from acorn_api.main import create_app

    app = create_app()
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {api_key}".encode())]
    results = {}
    async with app.router.lifespan_context(app):
        for name, path in endpoints.items():
            await run(app, path, headers, max(requests // 2, 2 * concurrency), concurrency)  # warm-up
            if callgrind:
                await control("--zero")
                await run(app, path, headers, requests, concurrency)
                await control("--dump=" + name)
                continue
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                await run(app, path, headers, requests, concurrency)
                best = min(best, (time.process_time() - started) / requests * 1000)
            results[name] = round(best, 3)
    if results:
        print(json.dumps(results))


def seeded(database_url: str) -> dict[str, Any]:
    import asyncpg

    async def read() -> dict[str, Any]:
        connection = await asyncpg.connect(database_url)
        try:
            found: dict[str, Any] = json.loads(await connection.fetchval("SELECT seeded FROM bench_api_seed"))
            return found
        finally:
            await connection.close()

    return asyncio.run(read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="a database kept by bench/api.py --reuse-database")
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--src", default=str(ROOT / "src"), help="the source tree to measure")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--only", help="comma-separated endpoint names (store_detail, stores_list, ...)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from sqlalchemy.engine import make_url

    database_url = make_url(args.server_url).set(database=args.database).render_as_string(hide_password=False)
    info = seeded(database_url)
    endpoints = {
        "store_detail": f"/v1/stores/{info['store_id']}",
        "stores_list": "/v1/stores?limit=50",
        "items_list": "/v1/items?limit=50&status=active",
        "effective_price": f"/v1/prices/effective?store_id={info['store_id']}&item_id={info['item_id']}",
        "POs_first_page": "/v1/purchase-orders?limit=50",
        "healthz": "/healthz",
    }
    if args.only:
        endpoints = {k: v for k, v in endpoints.items() if k in args.only.split(",")}
    if args.child:
        asyncio.run(drive(endpoints, info["api_key"], args.requests, args.concurrency, args.callgrind))
        return
    env = {
        **os.environ,
        "PYTHONPATH": f"{args.src}{os.pathsep}{ROOT}",
        "ACORN_ENVIRONMENT": "development",
        "ACORN_DATABASE_URL": database_url,
        "ACORN_REDIS_URL": args.redis_url,
        "ACORN_REDIS_KEY_PREFIX": "acorn-bench-inprocess",
        "ACORN_LOG_LEVEL": "WARNING",
        "ACORN_DATABASE_CONNECT_TIMEOUT": "60",
        "ACORN_RATE_LIMITS_PER_MINUTE": json.dumps(dict.fromkeys(("admin", "scoped"), 1_000_000_000)),
    }
    child = [sys.executable, __file__, *sys.argv[1:], "--child"]
    if not args.callgrind:
        subprocess.run(child, env=env, check=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        env["ACORN_JWT_KEYS_FILE"] = str(Path(tmp) / "jwt.pem")
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *child],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for dump in sorted(Path(tmp).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:])):
            text = dump.read_text(errors="replace")[:20_000]
            name = re.search(r"^desc: Trigger: dump (\S+)", text, re.M)
            total = re.search(r"^summary: (\d+)", text, re.M)
            if name and total:
                print(f"{name.group(1):20} {int(total.group(1)) / args.requests / 1000:10,.0f} k instructions/request")


if __name__ == "__main__":
    main()
