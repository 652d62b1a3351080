"""ACORN's read endpoints against a bare asyncpg + orjson twin that runs the same SQL, in one run.

One command: creates its own database (``acorn_api.migrate.scratch_database``), seeds one large account and three
small ones (``bench/seed.py``: COPY, deterministic), then for every endpoint below measures requests/s and p50/p99
with wrk at 1 and 32 connections against

* ``acorn``: the app as deployed (one uvicorn worker, API key, rate limiter on with limits raised, access log at
  INFO rendered to a file), and
* ``twin``: a bare ASGI app (no auth, no ORM, no validation) that runs, through an asyncpg pool of the same size,
  the very statements ACORN ran for that URL (captured from ACORN's engine in a warm-up pass) and returns the
  rows with orjson — the limit of this stack;
* optionally ``fastapi`` (``--fastapi-twin``): the twin's exact work behind one bare FastAPI route (no dependency,
  middleware, auth or response model) — the ceiling of any endpoint written on the brief's fixed stack;
* optionally ``before``: ACORN from another source tree (``--before-src``, e.g. ``git archive`` of an older
  commit), so that before/after figures come from the same run.

Rounds are interleaved (every server, every endpoint, per round) and the median and range are printed, with the
1-minute load average at each round's end. A static ``/ping`` on the twin at 32 connections shows what wrk itself
can drive on this machine (the generator is not the bottleneck when that is far above every endpoint).

Endpoints: stores (detail, list), items (filtered list), effective price, purchase orders (first page and page
2,000 of the cursor chain), and the list endpoints of the ledger (entries, invoices, imports), refund cases and
reconciliation (invoice balances, summary, aging); the twin runs every statement ACORN ran for the URL, in order.

    .venv/bin/python bench/api.py                       # 3 rounds x 5 s per wrk run
    .venv/bin/python bench/api.py --rounds 3 --duration 5 --before-src /tmp/acorn-before/src
    .venv/bin/python bench/api.py --reuse-database acorn_bench_api_kept ...   # seed once, reuse on later runs
    .venv/bin/python bench/api.py --fastapi-twin --connections 32 --only "store detail|stores list"
    .venv/bin/python bench/api.py --rounds 0 --memory-minutes 5 --reuse-database acorn_bench_api_kept

``--memory-minutes N`` then drives ACORN with wrk (32 connections, every endpoint in turn, 10 s each) for N minutes
and prints the worker's RSS after each run (memory per worker over time).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import pickle
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# module level, not in serve_fastapi_twin: FastAPI resolves the route's (string) annotations in the module's globals
from fastapi import FastAPI, Request, Response

ROOT = Path(__file__).resolve().parents[1]
BIG_LIMIT = 1_000_000_000
DEEP_PAGE = 2000
PAGE = 50


# --- the servers (each runs as a subprocess) --------------------------------------------------------------------


def serve_acorn(port: int, capture: str | None) -> None:
    import uvicorn
    from sqlalchemy import event

    import acorn_api.main as main_module

    if capture:
        # Warm-up pass only: record every statement (and its parameters) the engine runs, for the twin.
        path = Path(capture)
        open_resources = main_module.open_resources

        async def recording_resources(settings: Any) -> Any:
            resources = await open_resources(settings)

            def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
                with path.open("ab") as f:
                    pickle.dump((statement, parameters), f)

            event.listen(resources.engine.sync_engine, "before_cursor_execute", record)

            def log_direct(connection: Any, _: Any) -> None:
                # Statements run straight on asyncpg (the repositories' row read path) bypass the engine's events;
                # asyncpg's query logger sees them (and not the engine's prepared statements, so nothing twice).
                connection.driver_connection.add_query_logger(
                    lambda query: record(None, None, query.query, query.args, None, False)
                )

            event.listen(resources.engine.sync_engine, "connect", log_direct)
            return resources

        main_module.open_resources = recording_resources  # type: ignore[assignment]
    app = main_module.create_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)


def _default(value: Any) -> Any:
    """What orjson does not know: Decimal, and asyncpg's own UUID type (not a uuid.UUID subclass)."""
    from decimal import Decimal

    if isinstance(value, Decimal) or type(value).__name__ == "UUID":
        return str(value)
    raise TypeError


def _twin_responder(routes_file: str) -> tuple[dict[str, Any], Any]:
    """The twin's work for one URL: the statements ACORN ran for it, in order, on a pooled asyncpg connection,
    the rows returned with orjson. Shared by the bare ASGI twin and the FastAPI twin."""
    import orjson

    routes: dict[str, tuple[list[tuple[str, tuple[Any, ...]]], str]] = pickle.loads(Path(routes_file).read_bytes())
    state: dict[str, Any] = {}

    async def respond(target: str) -> bytes:
        statements, shape = routes[target]
        async with state["pool"].acquire() as connection:
            for sql, params in statements:  # the same statements ACORN ran for this URL, in order
                rows = await connection.fetch(sql, *params)
        if shape == "rows":  # aggregates: the rows as they are
            return orjson.dumps({"data": [dict(r) for r in rows]}, default=_default)
        if shape == "one":
            return orjson.dumps(dict(rows[0]), default=_default)
        data = [dict(r) for r in rows[:PAGE]]
        cursor = None
        if len(rows) > PAGE and "created_at" in data[-1] and "id" in data[-1]:
            last = data[-1]
            raw = orjson.dumps({"t": last["created_at"].isoformat(), "i": str(last["id"])})
            cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return orjson.dumps({"data": data, "next_cursor": cursor, "has_more": cursor is not None}, default=_default)

    return state, respond


def serve_twin(port: int, routes_file: str, database_url: str, pool_size: int) -> None:
    """The bare twin: path+query -> (sql, params, shape); asyncpg pool, orjson, nothing else."""
    import asyncpg
    import uvicorn

    state, respond = _twin_responder(routes_file)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["pool"] = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["pool"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        target = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        if scope["path"] in ("/ping", "/healthz"):
            body = b'{"status":"ok"}'
        else:
            body = await respond(target)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)


def serve_fastapi_twin(port: int, routes_file: str, database_url: str, pool_size: int) -> None:
    """The twin's exact work behind the least FastAPI can do: one ``async def`` route, no dependency, no middleware,
    no auth, no response model, the body returned as a ready ``Response``. What FastAPI and Starlette cost on top
    of the bare twin, i.e. the ceiling of any endpoint written on the fixed stack."""
    from collections.abc import AsyncIterator

    import asyncpg
    import uvicorn

    state, respond = _twin_responder(routes_file)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/{path:path}")
    async def any_read(path: str, request: Request) -> Response:
        query = request.url.query
        body = await respond(request.url.path + ("?" + query if query else ""))
        return Response(body, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)


# --- the driver --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_request: float


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    def span(self, attr: str) -> str:
        values = [getattr(r, attr) for r in self.runs]
        return f"{min(values):.0f}-{max(values):.0f}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    import httpx

    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args, "--port", str(port)],
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server {args} did not start; see {log}")
            time.sleep(0.2)
        yield base, proc.pid
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


def wrk(url: str, headers: dict[str, str], duration: float, connections: int, pid: int | None = None) -> Run:
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cpu_before = _cpu_seconds(pid) if pid else 0.0
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    cpu = (_cpu_seconds(pid) - cpu_before) if pid else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return Run(rps, p50, p99, errors, cpu / total * 1000 if total and pid else 0.0)


def _deep_cursor(dsn: str, account_id: uuid.UUID, page: int) -> str:
    import asyncpg
    import orjson

    async def find() -> str:
        connection = await asyncpg.connect(dsn)
        try:
            row = await connection.fetchrow(
                "SELECT created_at, id FROM purchase_orders WHERE account_id = $1 "
                "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
                account_id,
                (page - 1) * PAGE - 1,
            )
        finally:
            await connection.close()
        raw = orjson.dumps({"t": row["created_at"].isoformat(), "i": str(row["id"])})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return asyncio.run(find())


def _explain(
    dsn: str, routes: dict[str, tuple[list[tuple[str, tuple[Any, ...]]], str]], paths: list[str]
) -> dict[str, str]:
    import asyncpg

    async def run() -> dict[str, str]:
        connection = await asyncpg.connect(dsn)
        plans = {}
        try:
            for path in paths:
                statements, _ = routes[path]
                out = []
                for sql, params in statements:
                    rows = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
                    out.append("\n".join(r[0] for r in rows))
                plans[path] = "\n\n".join(out)
        finally:
            await connection.close()
        return plans

    return asyncio.run(run())


AUTH_TABLES = re.compile(r"\b(api_keys|oauth_clients|accounts)\b")


def _capture(base: str, headers: dict[str, str], path: str, capture: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """The domain statements ACORN ran for ``path``, in order (credential cache warm, so auth runs no query)."""
    import httpx

    for _ in range(2):
        r = httpx.get(base + path, headers=headers)
        r.raise_for_status()
    capture.write_bytes(b"")
    httpx.get(base + path, headers=headers).raise_for_status()
    statements = []
    with capture.open("rb") as f, contextlib.suppress(EOFError):
        while True:
            statements.append(pickle.load(f))
    domain = [(sql, tuple(params or ())) for sql, params in statements if not AUTH_TABLES.search(sql)]
    if not domain:
        raise RuntimeError(f"expected a domain statement for {path}, got {[s for s, _ in statements]}")
    return domain


SHAPES = {"store detail": "one", "effective price": "one", "recon. summary": "rows", "recon. aging": "rows"}
SEED_TABLE = "bench_api_seed"


def _seed_into(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Accounts, the COPY seed and the ledger/cases/reconciliation rows; returns what the bench requests."""
    from acorn_api.cli import _create_account
    from acorn_api.settings import Settings
    from bench.seed import seed, seed_ledger

    os.environ.update(
        {"ACORN_DATABASE_URL": database_url, "ACORN_REDIS_URL": args.redis_url, "ACORN_ENVIRONMENT": "development"}
    )
    big = asyncio.run(_create_account(Settings(), "Bench Vendor"))
    small = [asyncio.run(_create_account(Settings(), f"Small Vendor {n}")) for n in range(3)]
    started = time.perf_counter()
    seeded = asyncio.run(
        seed(
            database_url,
            uuid.UUID(big["account_id"]),
            [uuid.UUID(s["account_id"]) for s in small],
            orders=args.orders,
            items=args.items,
            stores=args.stores,
        )
    )
    ledger_seconds = asyncio.run(seed_ledger(database_url, args.redis_url, seeded.account_id, invoices=args.invoices))
    print(
        f"seeded {args.orders:,} purchase orders, {args.items:,} items (+1 quote each), {args.stores} stores "
        f"(+3 small accounts), {args.invoices:,} invoices with their ledger lines, cases and a matching run "
        f"in {time.perf_counter() - started:.0f} s (ledger part {ledger_seconds:.0f} s)",
        flush=True,
    )
    return {
        "account_id": big["account_id"],
        "api_key": big["api_key"],
        "store_id": str(seeded.store_id),
        "item_id": str(seeded.item_id),
        "orders": args.orders,
        "sizes": [args.orders, args.items, args.stores, args.invoices],
    }


@contextlib.contextmanager
def bench_database(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, Any]]]:
    """A scratch database dropped afterwards, or with ``--reuse-database NAME`` one kept between runs: seeded on
    the first run (sizes recorded in it), reused as is when the recorded sizes match, reseeded otherwise."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from acorn_api.migrate import execute_as_admin, scratch_database, upgrade

    if not args.reuse_database:
        with scratch_database(args.database_url, prefix="acorn_bench_api") as database_url:
            yield database_url, _seed_into(database_url, args)
        return
    name = args.reuse_database
    database_url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    sizes = [args.orders, args.items, args.stores, args.invoices]

    async def recorded() -> dict[str, Any] | None:
        try:
            connection = await asyncpg.connect(database_url)
        except asyncpg.InvalidCatalogNameError:
            return None
        try:
            row = await connection.fetchval(f"SELECT to_regclass('{SEED_TABLE}') IS NOT NULL")
            if not row:
                return None
            found: dict[str, Any] = json.loads(await connection.fetchval(f"SELECT seeded FROM {SEED_TABLE}"))
            return found if found.get("sizes") == sizes else None
        finally:
            await connection.close()

    seeded = asyncio.run(recorded())
    if seeded is None:
        asyncio.run(execute_as_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(execute_as_admin(args.database_url, f'CREATE DATABASE "{name}"'))
        upgrade(database_url)
        seeded = _seed_into(database_url, args)

        async def record() -> None:
            connection = await asyncpg.connect(database_url)
            try:
                await connection.execute(f"CREATE TABLE {SEED_TABLE} (seeded text NOT NULL)")
                await connection.execute(f"INSERT INTO {SEED_TABLE} VALUES ($1)", json.dumps(seeded))
            finally:
                await connection.close()

        asyncio.run(record())
    else:
        upgrade(database_url)  # a database kept from an older checkout gets the migrations added since
        print(f"reusing database {name} (seeded earlier with the same sizes, migrated to head)", flush=True)
    yield database_url, seeded


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_run(
    base: str, pid: int, headers: dict[str, str], endpoints: dict[str, str], minutes: float
) -> list[tuple[float, float, int]]:
    """wrk at 32 connections over every endpoint in turn (10 s each) for ``minutes``; the worker's RSS sampled
    after each run: (elapsed s, RSS MB, requests so far)."""
    samples = [(0.0, _rss_mb(pid), 0)]
    started = time.monotonic()
    requests = 0
    while time.monotonic() - started < minutes * 60:
        for path in endpoints.values():
            run = wrk(base + path, headers, 10, 32)
            requests += int(run.rps * 10)
            samples.append((time.monotonic() - started, _rss_mb(pid), requests))
            if time.monotonic() - started >= minutes * 60:
                break
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=["acorn", "twin", "fastapi"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--capture", help=argparse.SUPPRESS)
    parser.add_argument("--routes", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", type=int, default=1_000_000, help="purchase orders in the large account")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--invoices", type=int, default=100_000, help="invoices (~3.1 ledger lines each)")
    parser.add_argument(
        "--reuse-database",
        metavar="NAME",
        help="keep the seeded database under this name and reuse it on the next run (drop it yourself)",
    )
    parser.add_argument(
        "--memory-minutes", type=float, default=0, help="then run ACORN this long and sample its RSS (target: 5)"
    )
    parser.add_argument("--connections", default="1,32", help="comma-separated wrk connection counts")
    parser.add_argument("--before-src", help="another source tree's src/ to run as 'before' in the same run")
    parser.add_argument("--only", help="endpoint names to measure, separated by '|'")
    parser.add_argument(
        "--fastapi-twin",
        action="store_true",
        help="also run the twin's work behind a bare FastAPI route: the ceiling of the fixed stack",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ACORN_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("ACORN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if args.serve == "acorn":
        serve_acorn(args.port, args.capture)
        return
    if args.serve in ("twin", "fastapi"):
        pool = int(os.environ.get("ACORN_DATABASE_POOL_SIZE", "10"))
        serve = serve_twin if args.serve == "twin" else serve_fastapi_twin
        serve(args.port, args.routes, os.environ["BENCH_DSN"], pool)
        return

    sys.path.insert(0, str(ROOT))

    prefix = f"acorn-bench-{secrets.token_hex(4)}"
    connections = [int(c) for c in args.connections.split(",")]
    with (
        bench_database(args) as (database_url, seeded),
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            **os.environ,
            "ACORN_ENVIRONMENT": "development",
            "ACORN_DATABASE_URL": database_url,
            "ACORN_REDIS_URL": args.redis_url,
            "ACORN_REDIS_KEY_PREFIX": prefix,
            "ACORN_JWT_KEYS_FILE": str(Path(tmp) / "jwt.pem"),
            "ACORN_LOG_LEVEL": "INFO",
            "BENCH_DSN": database_url,
            "ACORN_RATE_LIMITS_PER_MINUTE": json.dumps(
                dict.fromkeys(("admin", "purchasing", "operations", "finance", "viewer", "scoped"), BIG_LIMIT)
            ),
        }
        headers = {"Authorization": f"Bearer {seeded['api_key']}"}
        deep_page = min(DEEP_PAGE, seeded["orders"] // PAGE)  # page 2,000 needs 100,000 orders
        deep = _deep_cursor(database_url, uuid.UUID(seeded["account_id"]), deep_page)
        store_id, item_id = seeded["store_id"], seeded["item_id"]
        endpoints = {
            "store detail": f"/v1/stores/{store_id}",
            "stores list": f"/v1/stores?limit={PAGE}",
            "items list, filtered": f"/v1/items?limit={PAGE}&status=active",
            "effective price": f"/v1/prices/effective?store_id={store_id}&item_id={item_id}",
            "POs, first page": f"/v1/purchase-orders?limit={PAGE}",
            f"POs, page {deep_page}": f"/v1/purchase-orders?limit={PAGE}&cursor={deep}",
            "ledger entries": f"/v1/ledger/entries?limit={PAGE}",
            "invoices": f"/v1/invoices?limit={PAGE}",
            "imports": f"/v1/imports?limit={PAGE}",
            "refund cases": f"/v1/refund-cases?limit={PAGE}",
            "recon. invoices": f"/v1/reconciliation/invoices?limit={PAGE}",
            "recon. summary": "/v1/reconciliation/summary",
            "recon. aging": "/v1/reconciliation/aging",
        }
        if args.only:
            wanted = set(args.only.split("|"))
            endpoints = {k: v for k, v in endpoints.items() if k in wanted}
        log = Path(tmp) / "servers.log"
        capture = Path(tmp) / "capture.pickle"
        routes: dict[str, tuple[list[tuple[str, tuple[Any, ...]]], str]] = {}
        with server(["--serve", "acorn", "--capture", str(capture)], env, log) as (base, _):
            for name, path in endpoints.items():
                shape = SHAPES.get(name, "list")
                routes[path] = (_capture(base, headers, path, capture), shape)
        routes_file = Path(tmp) / "routes.pickle"
        routes_file.write_bytes(pickle.dumps(routes))
        plans = _explain(database_url, routes, [p for n, p in endpoints.items() if n.startswith("POs")])

        servers: dict[str, list[str]] = {
            "acorn": ["--serve", "acorn"],
            "twin": ["--serve", "twin", "--routes", str(routes_file)],
        }
        if args.fastapi_twin:
            servers["fastapi"] = ["--serve", "fastapi", "--routes", str(routes_file)]
        envs = {"acorn": env, "twin": env, "fastapi": env}
        if args.before_src:
            servers = {"before": ["--serve", "acorn"], **servers}
            envs["before"] = {**env, "PYTHONPATH": f"{args.before_src}{os.pathsep}{ROOT}"}
        env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
        import httpx

        for kind, argv in servers.items():  # every server answers every URL with 200 before anything is timed
            with server(argv, envs[kind], log) as (base, _):
                for path in endpoints.values():
                    status = httpx.get(base + path, headers=headers, timeout=30).status_code
                    if status != 200:
                        raise RuntimeError(f"{kind} answered {status} for {path}; see {log}")
        results: dict[tuple[str, str, int], Series] = {}
        ping = Series()
        loads = []
        print(f"wrk {args.duration:g} s per run, {args.rounds} round(s), connections {connections}", flush=True)
        for round_ in range(args.rounds):
            for kind, argv in servers.items():
                with server(argv, envs[kind], log) as (base, pid):
                    if kind == "twin":
                        ping.runs.append(wrk(base + "/ping", {}, args.duration, 32))
                    for name, path in endpoints.items():
                        wrk(base + path, headers, 1, 32)  # warm up connections, caches, prepared statements
                        for c in connections:
                            run = wrk(base + path, headers, args.duration, c, pid)
                            results.setdefault((kind, name, c), Series()).runs.append(run)
                            if run.errors:
                                print(f"  {kind} {name} c={c}: {run.errors} errors", flush=True)
            loads.append(os.getloadavg()[0])
            print(f"round {round_ + 1} done, load average {loads[-1]:.2f}", flush=True)

        memory: list[tuple[float, float, int]] = []
        if args.memory_minutes:
            with server(servers["acorn"], envs["acorn"], log) as (base, pid):
                for path in endpoints.values():
                    wrk(base + path, headers, 1, 32)
                print(
                    f"memory run: {args.memory_minutes:g} min of wrk at 32 connections over every endpoint", flush=True
                )
                memory = memory_run(base, pid, headers, endpoints, args.memory_minutes)

        with contextlib.suppress(Exception):
            import redis

            r = redis.Redis.from_url(args.redis_url)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)

    if memory:
        print("\nacorn worker RSS over the memory run (elapsed s, RSS MB, requests served):")
        for elapsed, rss, served in memory:
            print(f"  {elapsed:6.0f} s {rss:8.1f} MB {served:10,d}")
        first_minute = [rss for elapsed, rss, _ in memory if 0 < elapsed <= 60] or [memory[1][1]]
        print(
            f"  RSS after the first minute {max(first_minute):.1f} MB, at the end {memory[-1][1]:.1f} MB, "
            f"peak {max(rss for _, rss, _ in memory):.1f} MB"
        )
    if not args.rounds:
        return
    print(
        f"\nwrk ceiling (static /ping on the twin, 32 connections): {ping.median('rps'):.0f} req/s "
        f"(range {ping.span('rps')})"
    )
    print("1-minute load average at each round's end: " + ", ".join(f"{x:.2f}" for x in loads))
    header = (
        f"{'endpoint':22} {'server':6} {'conn':>4} {'req/s':>7} {'range':>11} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu ms/req':>10} {'vs twin':>8} {'p99 x':>6}"
    )
    print("\n" + header)
    for name in endpoints:
        for c in connections:
            twin = results[("twin", name, c)]
            for kind in servers:
                s = results[(kind, name, c)]
                ratio = s.median("rps") / twin.median("rps")
                p99x = s.median("p99_ms") / twin.median("p99_ms")
                print(
                    f"{name:22} {kind:6} {c:4d} {s.median('rps'):7.0f} {s.span('rps'):>11} {s.median('p50_ms'):7.2f} "
                    f"{s.median('p99_ms'):7.2f} {s.median('cpu_ms_per_request'):10.2f} {ratio:8.1%} {p99x:6.2f}"
                )
        for kind in servers:
            if 1 in connections and 32 in connections:
                one, many = results[(kind, name, 1)].median("rps"), results[(kind, name, 32)].median("rps")
                print(f"{'':22} {kind:6} 32 vs 1 connection: {many / one:.2f}x")
    print("\nEXPLAIN (ANALYZE, BUFFERS) of the purchase-order pages:")
    for path, plan in plans.items():
        print(f"\n{path}\n{plan}")


if __name__ == "__main__":
    main()
