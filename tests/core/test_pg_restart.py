"""PostgreSQL stopped while requests are in flight, against the app as deployed (uvicorn, its own process).

The database is a private cluster (``tests/private_servers.py``) stopped with ``pg_ctl stop -m fast`` (it
terminates every backend: the requests running a statement lose their connection) and started again a few
seconds later. Clients keep reads and writes going all along. Every request must end within a bound (no hang):
200/201 before the stop, 503 problem+json with ``Retry-After`` during it, never a 500; and once PostgreSQL is
back the same uvicorn process answers 200 again by itself. A second test freezes the cluster (SIGSTOP) instead:
sockets stay open and nothing answers, so only timeouts bound the wait.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from acorn_api.core.db import make_engine, make_sessionmaker
from acorn_api.settings import Settings, to_async_database_url
from tests.conftest import Tenant, _make_account
from tests.private_servers import PrivatePostgres, free_port, private_postgres
from tests.stores.factories import store_body

pytestmark = [pytest.mark.committing, pytest.mark.slow]

CLIENTS = 8
#: no request may take longer than this, outage or not: a statement is cancelled after COMMAND_TIMEOUT, a new
#: connection given up after the 5 s connect timeout (and the session's rollback is bounded the same way)
REQUEST_BOUND = 15.0
CLIENT_TIMEOUT = 30.0  # beyond the bound: a request still running then has hung
OUTAGE_SECONDS = 3.0
FROZEN_SECONDS = 20.0  # longer than REQUEST_BOUND: without timeouts, requests in flight would exceed it


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


#: the API's statement bound in these tests (``ACORN_DATABASE_COMMAND_TIMEOUT``, 60 s by default)
COMMAND_TIMEOUT = 2.0


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
        "ACORN_DATABASE_COMMAND_TIMEOUT": str(COMMAND_TIMEOUT),
        "ACORN_LOG_JSON": "false",
        "ACORN_LOG_LEVEL": "WARNING",
        # the traffic is the test's, not a tenant's: on a quiet machine 8 clients outrun 1,200 requests a minute
        "ACORN_RATE_LIMIT_ENABLED": "false",
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


@dataclass
class Traffic:
    """``CLIENTS`` clients reading and writing stores in a loop; every outcome recorded with its duration."""

    api: httpx.AsyncClient
    outcomes: list[tuple[float, int | str, float]] = field(default_factory=list)  # (started, status, seconds)
    problems: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            started = time.monotonic()
            try:
                if i % 3 == 0:
                    r = await self.api.post("/v1/stores", json=store_body(code=f"R{n}-{uuid.uuid4().hex[:8].upper()}"))
                else:
                    r = await self.api.get("/v1/stores", params={"limit": 20})
            except httpx.TimeoutException:
                self.outcomes.append((started, "timeout", time.monotonic() - started))
                continue
            self.outcomes.append((started, r.status_code, time.monotonic() - started))
            if r.status_code == 503:
                if not r.headers.get("content-type", "").startswith("application/problem+json"):
                    self.problems.append(f"503 without problem+json: {r.headers.get('content-type')}")
                if r.headers.get("retry-after") != "5":
                    self.problems.append(f"503 without Retry-After: {dict(r.headers)}")
                await asyncio.sleep(0.05)
            elif r.status_code not in (200, 201):
                self.problems.append(f"{r.status_code}: {r.text[:300]}")

    def report(self, since: float, until: float, log: Path) -> str:
        statuses = Counter(o[1] for o in self.outcomes)
        during = Counter(o[1] for o in self.outcomes if since <= o[0] <= until)
        slowest = max(o[2] for o in self.outcomes)
        tail = log.read_text()[-2000:]
        return f"all {dict(statuses)}; during the outage {dict(during)}; slowest {slowest:.1f} s\n{tail}"


async def tenant_of(postgres: PrivatePostgres, settings: Settings) -> Tenant:
    pg_settings = settings.model_copy(update={"database_url": to_async_database_url(postgres.url)})
    engine = make_engine(pg_settings, pool_size=1, max_overflow=0)
    try:
        return await _make_account(make_sessionmaker(engine), pg_settings, "Restart Vendor", ())
    finally:
        await engine.dispose()


async def wait_up(api: httpx.AsyncClient, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if (await api.get("/v1/stores")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the API did not come up: {log}")
        await asyncio.sleep(0.1)


async def recovered_within(api: httpx.AsyncClient, seconds: float) -> float | None:
    back_at = time.monotonic()
    while time.monotonic() - back_at < seconds:
        if (await api.get("/v1/stores")).status_code == 200:
            return time.monotonic() - back_at
        await asyncio.sleep(0.2)
    return None


async def run_outage(
    postgres: PrivatePostgres,
    settings: Settings,
    uvicorn_app: tuple[str, Path],
    begin: Callable[[], None],
    end: Callable[[], None],
    seconds: float,
) -> tuple[Traffic, float, float, float | None, list[int]]:
    base, log = uvicorn_app
    tenant = await tenant_of(postgres, settings)
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers(), timeout=CLIENT_TIMEOUT) as api:
        await wait_up(api, log)
        traffic = Traffic(api)
        clients = [asyncio.create_task(traffic.client(n)) for n in range(CLIENTS)]
        try:
            await asyncio.sleep(1.5)  # traffic under way
            began = time.monotonic()
            await asyncio.to_thread(begin)
            await asyncio.sleep(seconds)
            await asyncio.to_thread(end)
            ended = time.monotonic()
            recovery = await recovered_within(api, 30)
            await asyncio.sleep(1.0)  # and stays healthy under the same load
        finally:
            traffic.stop.set()
            await asyncio.gather(*clients)
        after = [(await api.get("/v1/stores")).status_code for _ in range(10)]
    return traffic, began, ended, recovery, after


async def test_requests_in_flight_when_postgresql_stops_answer_503_and_the_app_recovers_by_itself(
    postgres: PrivatePostgres, settings: Settings, uvicorn_app: tuple[str, Path]
) -> None:
    # fast shutdown: the backends of in-flight statements are terminated; new connections are refused
    traffic, began, ended, recovery, after = await run_outage(
        postgres, settings, uvicorn_app, postgres.stop, postgres.start, OUTAGE_SECONDS
    )
    report = traffic.report(began, ended, uvicorn_app[1])
    statuses = Counter(o[1] for o in traffic.outcomes)
    assert not traffic.problems, f"{traffic.problems[:5]}\n{report}"
    assert "timeout" not in statuses, report
    assert max(o[2] for o in traffic.outcomes) < REQUEST_BOUND, report
    assert Counter(o[1] for o in traffic.outcomes if began <= o[0] <= ended)[503] > 0, f"met the outage\n{report}"
    assert recovery is not None and recovery < 15, report
    assert after == [200] * 10, report
    print(f"\npg restart: {report.splitlines()[0]}; recovered {recovery:.1f} s after the start")


async def test_a_frozen_postgresql_is_a_bounded_wait_then_503_and_the_app_recovers_when_it_thaws(
    postgres: PrivatePostgres, settings: Settings, uvicorn_app: tuple[str, Path]
) -> None:
    # SIGSTOP: sockets stay open and nothing answers (a partition); only the statement and connect timeouts help
    traffic, began, ended, recovery, after = await run_outage(
        postgres, settings, uvicorn_app, postgres.freeze, postgres.thaw, FROZEN_SECONDS
    )
    report = traffic.report(began, ended, uvicorn_app[1])
    statuses = Counter(o[1] for o in traffic.outcomes)
    assert not traffic.problems, f"{traffic.problems[:5]}\n{report}"
    assert "timeout" not in statuses, f"a request hung for {CLIENT_TIMEOUT} s\n{report}"
    assert max(o[2] for o in traffic.outcomes) < REQUEST_BOUND, report
    assert Counter(o[1] for o in traffic.outcomes if began <= o[0] <= ended)[503] > 0, f"met the outage\n{report}"
    assert recovery is not None and recovery < 15, report
    assert after == [200] * 10, report
    print(f"\npg frozen: {report.splitlines()[0]}; recovered {recovery:.1f} s after the thaw")
