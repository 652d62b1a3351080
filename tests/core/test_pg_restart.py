"""PostgreSQL stopped while requests are in flight, against the app as deployed (uvicorn, its own process).

The database is a private cluster (``tests/private_servers.py``) stopped with ``pg_ctl stop -m fast`` (it
terminates every backend: the requests running a statement lose their connection) and started again a few
seconds later. Clients keep reads and writes going all along. Every request must end within a bound (no hang):
200/201 before the stop, 503 problem+json with ``Retry-After`` during it, never a 500; and once PostgreSQL is
back the same uvicorn process answers 200 again by itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acorn_api.core.db import make_engine, make_sessionmaker
from acorn_api.settings import Settings, to_async_database_url
from tests.conftest import _make_account
from tests.private_servers import PrivatePostgres, free_port, private_postgres
from tests.stores.factories import store_body

pytestmark = [pytest.mark.committing, pytest.mark.slow]

CLIENTS = 8
#: no request may take longer than this, outage or not (the connect timeout is 5 s)
REQUEST_BOUND = 12.0
OUTAGE_SECONDS = 3.0


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def uvicorn_app(postgres: PrivatePostgres, settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "api.log"
    env = {
        **os.environ,
        "ACORN_ENVIRONMENT": "test",
        "ACORN_DATABASE_URL": postgres.url,
        "ACORN_REDIS_URL": settings.redis_url or "",
        "ACORN_REDIS_KEY_PREFIX": f"{settings.redis_key_prefix}-pgrestart",
        "ACORN_ARQ_QUEUE_NAME": f"{settings.arq_queue_name}-pgrestart",
        "ACORN_DATABASE_POOL_SIZE": "4",
        "ACORN_LOG_JSON": "false",
        "ACORN_LOG_LEVEL": "WARNING",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "acorn_api.asgi:app", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def test_requests_in_flight_when_postgresql_stops_answer_503_and_the_app_recovers_by_itself(
    postgres: PrivatePostgres, settings: Settings, uvicorn_app: tuple[str, Path]
) -> None:
    base, log = uvicorn_app
    pg_settings = settings.model_copy(update={"database_url": to_async_database_url(postgres.url)})
    engine = make_engine(pg_settings, pool_size=1, max_overflow=0)
    try:
        tenant = await _make_account(make_sessionmaker(engine), pg_settings, "Restart Vendor", ())
    finally:
        await engine.dispose()

    outcomes: list[tuple[float, str, int | str, float]] = []  # (started, kind, status or error, seconds)
    problems: list[str] = []
    stop = asyncio.Event()

    async with httpx.AsyncClient(base_url=base, headers=tenant.headers(), timeout=REQUEST_BOUND) as api:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await api.get("/v1/stores")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.1)

        async def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                write = i % 3 == 0
                started = time.monotonic()
                try:
                    if write:
                        body = store_body(code=f"R{n}-{uuid.uuid4().hex[:8].upper()}")
                        r = await api.post("/v1/stores", json=body)
                    else:
                        r = await api.get("/v1/stores", params={"limit": 20})
                except httpx.TimeoutException:
                    outcomes.append((started, "write" if write else "read", "timeout", time.monotonic() - started))
                    continue
                took = time.monotonic() - started
                outcomes.append((started, "write" if write else "read", r.status_code, took))
                if r.status_code == 503:
                    if not r.headers.get("content-type", "").startswith("application/problem+json"):
                        problems.append(f"503 without problem+json: {r.headers.get('content-type')}")
                    if r.headers.get("retry-after") != "5":
                        problems.append(f"503 without Retry-After: {dict(r.headers)}")
                    await asyncio.sleep(0.05)
                elif r.status_code not in (200, 201):
                    problems.append(f"{r.status_code}: {r.text[:300]}")

        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await asyncio.sleep(1.5)  # traffic under way
        stopping_at = time.monotonic()
        await asyncio.to_thread(postgres.stop)  # fast shutdown: in-flight statements lose their backend
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(postgres.start)
        back_at = time.monotonic()

        # recovery: the next requests succeed, with no restart of the app
        recovered_at = None
        while time.monotonic() - back_at < 30:
            if (await api.get("/v1/stores")).status_code == 200:
                recovered_at = time.monotonic()
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # and stay healthy under the same load
        stop.set()
        await asyncio.gather(*clients)
        after = [await api.get("/v1/stores") for _ in range(10)]

    statuses = Counter(o[2] for o in outcomes)
    during = Counter(o[2] for o in outcomes if stopping_at <= o[0] <= back_at)
    slowest = max(o[3] for o in outcomes)
    report = (
        f"all {dict(statuses)}; during the outage {dict(during)}; slowest {slowest:.1f} s\n{log.read_text()[-2000:]}"
    )
    assert not problems, f"{problems[:5]}\n{report}"
    assert "timeout" not in statuses, report
    assert slowest < REQUEST_BOUND, report
    assert during[503] > 0, f"requests met the outage\n{report}"
    assert recovered_at is not None and recovered_at - back_at < 15, report
    assert [r.status_code for r in after] == [200] * 10, report
    print(f"\npg restart: {report.splitlines()[0]}; recovered {recovered_at - back_at:.1f} s after the start")
