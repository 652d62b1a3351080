"""Chaos: the whole money chain under faults, compared row by row with a clean run of the same workload.

One account (*chaos*) runs the workload against a real ``acorn-api worker`` process and a private
``redis-server`` while a seeded RNG SIGKILLs and restarts the worker and restarts Redis (``SHUTDOWN NOSAVE``:
the queue and every arq key are lost) at random moments:

- a purchase-order sync from the SP-API simulator with injected faults (429 bursts, 5xx, truncated pages,
  expired tokens) and a slow rate limit, so kills land mid-run;
- imports of every report type with a parser (remittance, chargebacks, payables, co-op, returns, ERP invoices),
  which open refund cases and run incremental reconciliation matching;
- a full reconciliation run;
- webhook deliveries of every event to a local HTTP receiver.

Another account (*clean*) then runs the same workload against a fault-free simulator with nobody killing
anything. The ledger, payments, invoices, refund cases, invoice balances, purchase orders and the event types of
both accounts must be identical, and every event of the chaos account must have reached the receiver at least
once. The shared PostgreSQL is never stopped (its outage is tested in ``tests/core/test_pg_restart.py`` against a
private cluster); the shared Redis is never touched.

After each kill the test moves the dead worker's leases into the past (the sync run's heartbeat, the webhook
deliveries it held) instead of waiting out the real 25 s / 30 s staleness bounds: the recovery paths that take
over a stale run or lease are the ones exercised, only the clock is skipped. ``ACORN_CHAOS_DEEP=1`` runs more
kills and Redis restarts over a bigger sync; ``ACORN_CHAOS_SEED`` picks another schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis
from sqlalchemy import DateTime, Uuid, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem, SyncRun
from acorn_api.core.db import Resources, make_sessionmaker
from acorn_api.core.jobs import JobOutbox, queue_settings
from acorn_api.core.time import utcnow
from acorn_api.ledger.models import Import, Invoice, LedgerEntry, Payment, PaymentLine
from acorn_api.main import create_app
from acorn_api.reconciliation.models import InvoiceBalance, ReconciliationRun
from acorn_api.refunds.models import RefundCase
from acorn_api.settings import Settings
from acorn_api.webhooks.models import Event, WebhookDelivery
from acorn_sim.config import FaultConfig
from tests.amazon.test_sync_support import connection_body, range_body, served, sim_config
from tests.conftest import AccountFactory, Tenant
from tests.ledger import files
from tests.private_servers import PrivateRedis, private_redis
from tests.stores.factories import store_body
from tests.webhooks.conftest import Receiver

pytestmark = [pytest.mark.committing, pytest.mark.slow, pytest.mark.timeout(900)]

DEEP = os.environ.get("ACORN_CHAOS_DEEP", "") not in ("", "0")
SEED = int(os.environ.get("ACORN_CHAOS_SEED", "1414"))
KILLS = 8 if DEEP else 3
REDIS_RESTARTS = 4 if DEEP else 2
PURCHASE_ORDERS = 4000 if DEEP else 2000
#: faults on one SP-API call in five: throttling, 5xx, truncated JSON, an expired token (no hanging timeouts:
#: the worker's 30 s request timeout is not tunable from outside, and timeouts are covered by tests/amazon)
FAULTS = FaultConfig(throttle=0.03, server_error=0.09, truncated_json=0.05, expired_token=0.03)
#: the worker's staleness bounds, shortened where a setting allows it
WORKER_ENV = {
    "ACORN_WEBHOOK_TIMEOUT_SECONDS": "2",
    "ACORN_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "ACORN_WEBHOOK_RETRY_MAX_SECONDS": "2",
}
SETTLE_SECONDS = 240 if DEEP else 150


# ---------------------------------------------------------------- processes


@dataclass
class WorkerProcess:
    """``acorn-api worker`` as a subprocess that can be SIGKILLed and started again."""

    settings: Settings
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        assert self.settings.redis_url
        env = {
            **os.environ,
            "ACORN_DATABASE_URL": self.database_url,
            "ACORN_REDIS_URL": self.settings.redis_url,
            "ACORN_ARQ_QUEUE_NAME": self.settings.arq_queue_name,
            "ACORN_REDIS_KEY_PREFIX": self.settings.redis_key_prefix,
            "ACORN_ENVIRONMENT": "test",
            "ACORN_SPAPI_ALLOWED_HOSTS": ",".join(self.settings.spapi_allowed_hosts),
            "ACORN_LOG_JSON": "false",
            "ACORN_LOG_LEVEL": "WARNING",
            **WORKER_ENV,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "acorn_api.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        self.kills += 1

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


# ---------------------------------------------------------------- the workload


@dataclass
class Workload:
    """What one account does, through the API as a user would."""

    api: httpx.AsyncClient
    tenant: Tenant
    sim_url: str
    receiver_url: str
    responses: Counter[int] = field(default_factory=Counter)
    run_id: str | None = None
    store_id: str | None = None
    import_ids: list[str] = field(default_factory=list)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """A client that honours 503 + Retry-After (with a shorter pause); the same Idempotency-Key each time."""
        headers = {**self.tenant.headers(), "Idempotency-Key": uuid.uuid4().hex}
        for _ in range(60):
            r = await self.api.post(path, headers=headers, **kwargs)
            self.responses[r.status_code] += 1
            if r.status_code != 503:
                assert r.status_code in (200, 201, 202), r.text
                return r
            assert "retry-after" in r.headers
            await asyncio.sleep(0.5)
        raise AssertionError(f"{path} kept answering 503")

    def steps(self) -> list[Callable[[], Awaitable[None]]]:
        # No two files share a ledger key (an invoice number, a co-op agreement): when two sources carry the same
        # key the first one *loaded* wins, and loads run concurrently, so the winner depends on timing even
        # without faults (see the README's Reliability section). Matching still runs over all of them together.
        remittance = files.remittance(invoices=8, start=3000)
        coop_rows = [[*row[:-1], "ABCD-87654321"] if i else row for i, row in enumerate(files.coop(lines=3)[0])]
        reports: list[tuple[str, list[list[Any]]]] = [
            ("remittance", remittance.rows),
            ("chargebacks", files.chargebacks(count=4)[0]),
            ("payables", files.payables()[0]),
            ("coop", coop_rows),
            ("returns", files.returns()[0]),
            ("invoices", files.erp_invoices([f"E-{n}" for n in range(3100, 3104)])[0]),
        ]

        async def subscribe() -> None:
            await self.post("/v1/webhook-endpoints", json={"url": self.receiver_url, "event_types": "*"})

        async def store() -> None:
            self.store_id = (await self.post("/v1/stores", json=store_body())).json()["id"]

        async def sync() -> None:
            created = await self.post("/v1/connections", json=connection_body(self.sim_url))
            run = await self.post(f"/v1/connections/{created.json()['id']}/syncs", json=range_body())
            self.run_id = run.json()["id"]

        def upload(report_type: str, rows: list[list[Any]]) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                # payables carry no currency: the store's
                form = {
                    "report_type": report_type,
                    **({"store_id": self.store_id} if report_type == "payables" else {}),
                }
                r = await self.post(
                    "/v1/imports", files={"file": (f"{report_type}.csv", files.to_csv(rows).encode())}, data=form
                )
                self.import_ids.append(r.json()["id"])

            return go

        return [subscribe, store, sync, *(upload(t, rows) for t, rows in reports)]

    async def reconcile(self) -> None:
        await self.post("/v1/reconciliation/runs", json={"kind": "full"})


# ---------------------------------------------------------------- observing the database


def comparable_columns(model: Any) -> list[Any]:
    """Columns that mean the same in two accounts: not ids, not wall-clock timestamps."""
    out = []
    for column in model.__table__.c:
        kind = column.type
        if isinstance(kind, Uuid | DateTime) or (isinstance(kind, ARRAY) and isinstance(kind.item_type, Uuid)):
            continue
        out.append(column)
    return out


def canonical(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


SNAPSHOT_MODELS: tuple[Any, ...] = (
    LedgerEntry,
    Payment,
    PaymentLine,
    Invoice,
    RefundCase,
    InvoiceBalance,
    PurchaseOrder,
    PurchaseOrderItem,
)


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> dict[str, Any]:
    """Every business row of the account, without the values that differ between two accounts."""
    out: dict[str, Any] = {}
    async with sessionmaker() as s:
        for model in SNAPSHOT_MODELS:
            columns = comparable_columns(model)
            rows = (await s.execute(select(*columns).where(model.account_id == account_id))).all()
            out[model.__tablename__] = sorted(tuple(canonical(v) for v in r) for r in rows)
        types = (await s.scalars(select(Event.type).where(Event.account_id == account_id))).all()
        out["event_types"] = sorted(Counter(types).items())
        statuses = (await s.scalars(select(Import.status).where(Import.account_id == account_id))).all()
        out["import_statuses"] = sorted(statuses)
    return out


async def pending_work(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, queue: str, account_id: uuid.UUID
) -> list[str]:
    """Why the account is not settled yet (empty when it is)."""
    reasons: list[str] = []
    account = str(account_id)
    async with sessionmaker() as s:
        runs = (await s.scalars(select(SyncRun.status).where(SyncRun.account_id == account_id))).all()
        reasons += [f"sync {status}" for status in runs if status in ("queued", "running")]
        imports = (await s.scalars(select(Import.status).where(Import.account_id == account_id))).all()
        reasons += [f"import {status}" for status in imports if status in ("queued", "running")]
        recs = (
            await s.scalars(select(ReconciliationRun.status).where(ReconciliationRun.account_id == account_id))
        ).all()
        reasons += [f"reconciliation {status}" for status in recs if status in ("queued", "running")]
        deliveries = await s.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.account_id == account_id, WebhookDelivery.status == "pending")
        )
        if deliveries:
            reasons.append(f"{deliveries} deliveries pending")
        outbox = await s.scalar(
            select(func.count())
            .select_from(JobOutbox)
            .where(
                JobOutbox.dispatched_at.is_(None),
                or_(JobOutbox.account_id == account_id, JobOutbox.args[0].astext == account),
            )
        )
        if outbox:
            reasons.append(f"{outbox} jobs undispatched")
        # After a Redis data loss the worker re-sends every outbox row of the last day, and in a full test run
        # the database holds other tests' rows too (some deferred for minutes): those are not this account's
        # work, and waiting for them would never settle.
        foreign = await s.scalars(
            select(JobOutbox).where(
                or_(JobOutbox.account_id.is_(None), JobOutbox.account_id != account_id),
                or_(JobOutbox.args[0].astext.is_(None), JobOutbox.args[0].astext != account),
            )
        )
        others = {row.arq_job_id for row in foreign}
    try:
        queued = [j.decode() for j in await redis.zrange(queue, 0, -1)]
        running = [
            k.decode().removeprefix("arq:in-progress:") async for k in redis.scan_iter(match="arq:in-progress:*")
        ]
    except Exception as exc:  # Redis restarting: not settled
        return [*reasons, f"redis: {type(exc).__name__}"]
    busy = [j for j in queued + running if "cron:" not in j and j not in others]
    if busy:
        reasons.append(f"{len(busy)} jobs queued or running")
    return reasons


async def settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    queue: str,
    account_id: uuid.UUID,
    worker: WorkerProcess,
    seconds: float,
) -> None:
    """Wait until nothing is pending for the account and its rows stop changing."""
    deadline = time.monotonic() + seconds
    previous: dict[str, Any] | None = None
    while True:
        assert worker.alive(), worker.tail()
        reasons = await pending_work(sessionmaker, redis, queue, account_id)
        if not reasons:
            current = await snapshot(sessionmaker, account_id)
            if current == previous:
                return
            previous = current
        else:
            previous = None
        if os.environ.get("ACORN_CHAOS_VERBOSE"):
            print(f"{time.monotonic():.0f} settling: {reasons or 'rows still changing'}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {reasons}\n{worker.tail()}")
        await asyncio.sleep(1.0)


async def sync_under_way(sessionmaker: async_sessionmaker[AsyncSession], workload: Workload, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if workload.run_id is not None:
            async with sessionmaker() as s:
                run = await s.get(SyncRun, uuid.UUID(workload.run_id))
            if run is not None and (run.pages >= 2 or run.status not in ("queued", "running")):
                return
        await asyncio.sleep(0.1)


async def skip_the_clock(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, account_id: uuid.UUID
) -> None:
    """Once the worker is dead: what it held, aged past its staleness bound instead of waiting for it.

    A sync run's heartbeat (25 s), a running import (``import_stale_seconds``, 300 s), a webhook lease (timeout
    + 20 s) and arq's in-progress key of every job it was running (the longest job timeout + 10 s: an hour).
    Nothing else is done for the system: its own recovery (crons, arq's re-delivery) still has to notice.
    """
    now = utcnow()
    async with sessionmaker() as s, s.begin():
        await s.execute(
            update(SyncRun)
            .where(SyncRun.account_id == account_id, SyncRun.status == "running")
            .values(heartbeat_at=now - timedelta(minutes=10))
        )
        await s.execute(
            update(Import)
            .where(Import.account_id == account_id, Import.status == "running")
            .values(updated_at=now - timedelta(hours=1))
        )
        await s.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.account_id == account_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.lease_token.is_not(None),
            )
            .values(next_attempt_at=now - timedelta(seconds=1), lease_until=now - timedelta(seconds=1))
        )
    with contextlib.suppress(Exception):  # Redis may be restarting: then the keys are gone anyway
        held = [key async for key in redis.scan_iter(match="arq:in-progress:*")]
        if held:
            await redis.delete(*held)


# ---------------------------------------------------------------- the test


@pytest.fixture
async def private() -> AsyncIterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def chaos_settings(settings: Settings, private: PrivateRedis) -> Settings:
    run = uuid.uuid4().hex[:6]
    return settings.model_copy(
        update={
            "redis_url": private.url,
            "redis_key_prefix": f"{settings.redis_key_prefix}-chaos-{run}",
            "arq_queue_name": f"{settings.arq_queue_name}-chaos-{run}",
        }
    )


@pytest.fixture
async def pool(chaos_settings: Settings) -> AsyncIterator[ArqRedis]:
    assert chaos_settings.redis_url
    redis = await create_pool(
        queue_settings(chaos_settings.redis_url), default_queue_name=chaos_settings.arq_queue_name
    )
    yield redis
    await redis.aclose()


@pytest.fixture
async def api(chaos_settings: Settings, engine: AsyncEngine, pool: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        chaos_settings, resources=Resources(engine=None, sessionmaker=make_sessionmaker(engine), redis=pool)
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        yield client


@pytest.fixture
async def leave_no_due_deliveries(
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[None]:
    """The receiver goes away with the test; deliveries still pending then would be due for every later sweep
    in the same database (``tests/webhooks/test_delivery.py`` counts what a sweep attempts)."""
    since = utcnow()
    yield
    async with committing_sessionmaker() as s, s.begin():
        await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.created_at >= since)
            .values(status="failed", next_attempt_at=None)
        )


@pytest.mark.usefixtures("leave_no_due_deliveries")
async def test_the_money_chain_under_worker_kills_and_redis_restarts_ends_as_a_clean_run_ends(
    api: httpx.AsyncClient,
    private: PrivateRedis,
    chaos_settings: Settings,
    pool: ArqRedis,
    database_url: str,
    make_committed_account: AccountFactory,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    queue = chaos_settings.arq_queue_name
    worker = WorkerProcess(chaos_settings, database_url, tmp_path / "worker.log")
    faulty = sim_config(
        seed=SEED,
        purchase_orders=PURCHASE_ORDERS,
        # 2 pages/s after a burst of 10, so the sync lasts long enough to be hit. The burst matches the documented
        # one: with a burst of 1, a worker that lost the rate it had learned (a restart) bursts, and 5 quick
        # attempts do not always outlast the 429s (the run ends partially_succeeded; see the README)
        rate_overrides={"getPurchaseOrders": (2.0, 10)},
        faults=FAULTS,
    )
    clean_config = sim_config(seed=SEED, purchase_orders=PURCHASE_ORDERS)
    events_log: list[str] = []

    async with served(faulty) as faulty_sim, served(clean_config) as clean_sim:
        victim = await make_committed_account("Chaos Vendor")
        chaos = Workload(api, victim, faulty_sim.url, receiver.url)
        worker.start()
        try:
            # the chaos schedule: kills and Redis restarts in a seeded order, at seeded moments
            actions = ["kill"] * KILLS + ["redis"] * REDIS_RESTARTS
            rng.shuffle(actions)
            steps = chaos.steps()

            async def run_workload() -> None:
                for step in steps:
                    await step()
                    await asyncio.sleep(rng.uniform(0.0, 1.5))

            workload = asyncio.create_task(run_workload())
            targeted = False
            for action in actions:
                await asyncio.sleep(rng.uniform(0.8, 4.0))
                if action == "kill" and not targeted:
                    # the first kill waits for the sync to be under way, so one kill surely lands mid-run
                    targeted = True
                    await sync_under_way(committing_sessionmaker, chaos, seconds=60)
                at = f"{time.monotonic() - started:5.1f}s"
                if action == "kill":
                    worker.kill()
                    await skip_the_clock(committing_sessionmaker, pool, victim.id)
                    await asyncio.sleep(rng.uniform(0.0, 1.0))
                    worker.start()
                else:
                    private.shutdown()  # SHUTDOWN NOSAVE: queue, results, locks and the epoch key are gone
                    await asyncio.sleep(rng.uniform(0.2, 2.0))
                    private.start()
                events_log.append(f"{at} {action}")
                if workload.done():
                    await workload  # raise its error now
            await workload
            await settle(committing_sessionmaker, pool, queue, victim.id, worker, SETTLE_SECONDS)
            # a full reconciliation at the end, itself hit by one more kill once it is under way
            await chaos.reconcile()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            worker.kill()
            await skip_the_clock(committing_sessionmaker, pool, victim.id)
            worker.start()
            events_log.append(f"{time.monotonic() - started:5.1f}s kill (reconciliation)")
            await settle(committing_sessionmaker, pool, queue, victim.id, worker, SETTLE_SECONDS)
            chaos_done = time.monotonic() - started

            # the clean run: same workload, fault-free simulator, nobody killing anything
            clean_tenant = await make_committed_account("Clean Vendor")
            clean = Workload(api, clean_tenant, clean_sim.url, receiver.url)
            for step in clean.steps():
                await step()
            await settle(committing_sessionmaker, pool, queue, clean_tenant.id, worker, SETTLE_SECONDS)
            await clean.reconcile()
            await settle(committing_sessionmaker, pool, queue, clean_tenant.id, worker, SETTLE_SECONDS)
        finally:
            worker.stop()
        faults_injected = dict(faulty_sim.simulator.stats.faults)
        calls = sum(faulty_sim.simulator.stats.requests.values())
        orders = len(faulty_sim.simulator.data.orders)

    chaos_rows = await snapshot(committing_sessionmaker, victim.id)
    clean_rows = await snapshot(committing_sessionmaker, clean_tenant.id)
    async with committing_sessionmaker() as s:
        imports = (
            await s.execute(
                select(Import.report_type, Import.status, Import.attempts, Import.error).where(
                    Import.account_id == victim.id
                )
            )
        ).all()
    report = (
        f"schedule: {events_log}; {calls} SP-API calls, faults: {faults_injected}; chaos phase {chaos_done:.0f} s\n"
        f"imports: {imports}\n{worker.tail()}"
    )

    assert worker.kills == KILLS + 1, report
    assert chaos.responses.keys() <= {200, 201, 202, 503}, chaos.responses
    assert chaos_rows["import_statuses"] == ["succeeded"] * 6, report
    async with committing_sessionmaker() as s:
        run = await s.get(SyncRun, uuid.UUID(str(chaos.run_id)))
        assert run is not None
        assert (run.status, run.created) == ("succeeded", orders), (run.status, run.error, report)
        sync_attempts = (run.attempts, run.resumes)
        recs = (
            await s.scalars(select(ReconciliationRun.status).where(ReconciliationRun.account_id == victim.id))
        ).all()
    assert sum(faults_injected.values()) > 0, f"the simulator injected faults\n{report}"
    for table in chaos_rows:
        assert chaos_rows[table], f"{table}: the workload wrote nothing"
        assert chaos_rows[table] == clean_rows[table], f"{table} differs from the clean run\n{report}"

    # every event of the chaos account reached the receiver at least once, with its own id
    async with committing_sessionmaker() as s:
        event_ids = {str(e) for e in (await s.scalars(select(Event.id).where(Event.account_id == victim.id))).all()}
    delivered = {r.headers.get("acorn-event-id") for r in receiver.received}
    assert event_ids and event_ids <= delivered, f"never delivered: {sorted(event_ids - delivered)[:5]}\n{report}"
    print(  # the figures the README quotes
        f"\nchaos: {report.splitlines()[0]}; sync (attempts, resumes) {sync_attempts}; import attempts "
        f"{[i[2] for i in imports]}; reconciliation runs {Counter(recs)}; {len(receiver.received)} POSTs for "
        f"{len(event_ids)} events; total {time.monotonic() - started:.0f} s"
    )
