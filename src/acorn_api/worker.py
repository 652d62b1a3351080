"""arq worker: job functions, cron jobs, the resources each job gets through ``ctx``, and the supervisor that
keeps a worker running through Redis and PostgreSQL outages (with a health key for ``acorn-api worker --check``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import time
from typing import Any, ClassVar

import structlog
from arq import cron
from arq.typing import WorkerCoroutine
from arq.worker import Worker, create_worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from acorn_api.amazon import jobs as vendor_jobs
from acorn_api.core.db import make_engine, make_sessionmaker
from acorn_api.core.idempotency import purge_expired
from acorn_api.core.jobs import job_session, purge_dispatched_jobs, queue_settings, redispatch_jobs
from acorn_api.core.logging import configure_logging
from acorn_api.ledger import jobs as ledger_jobs
from acorn_api.quotes import jobs as quotes_jobs
from acorn_api.reconciliation import jobs as reconciliation_jobs
from acorn_api.refunds import jobs as refunds_jobs
from acorn_api.settings import Settings, get_settings
from acorn_api.webhooks import jobs as webhook_jobs

log = structlog.get_logger(__name__)


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    async with job_session(ctx) as session:
        return await purge_expired(session)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    ctx["settings"] = settings
    engine = make_engine(settings)
    ctx["engine"] = engine
    ctx["sessionmaker"] = make_sessionmaker(engine)
    await vendor_jobs.open_vendor_resources(ctx)
    # Everything imported and built by now (modules, models, validators, SQLAlchemy's mappers) lives as long as
    # the worker: keep it out of the collector's full passes. A sync page allocates thousands of dicts; without
    # this, every full pass walked the whole heap again (~170 ms each; close to half of a sync's CPU in bench/sync.py).
    gc.collect()
    gc.freeze()
    # Young collections every 20,000 net allocations instead of 700: a page of 100 purchase orders holds ~5,000
    # dicts at once, so the default ran dozens of young collections per page (~10 % of a sync's CPU); cyclic
    # garbage waits a little longer (a few MB at most) before it is freed.
    gc.set_threshold(20_000, 10, 10)


async def shutdown(ctx: dict[str, Any]) -> None:
    await vendor_jobs.close_vendor_resources(ctx)
    await webhook_jobs.close_webhook_resources(ctx)
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()


FUNCTIONS: list[WorkerCoroutine] = [
    quotes_jobs.expire_quotes,
    purge_idempotency_keys,
    vendor_jobs.run_sync,
    vendor_jobs.schedule_due_syncs,
    vendor_jobs.recover_stale_syncs,
    vendor_jobs.submit_invoice,
    vendor_jobs.poll_invoice_transaction,
    vendor_jobs.reencrypt_connection_secrets,
    reconciliation_jobs.match_invoices,
    redispatch_jobs,
    purge_dispatched_jobs,
    ledger_jobs.load_import,
    ledger_jobs.recover_stale_imports,
    refunds_jobs.open_refund_cases,
    refunds_jobs.open_refund_cases_nightly,
    refunds_jobs.refund_case_deadlines,
    vendor_jobs.warn_expiring_credentials,
    webhook_jobs.deliver_event,
    webhook_jobs.deliver_due_webhooks,
    webhook_jobs.purge_old_events,
]
EVERY_10_SECONDS = {0, 10, 20, 30, 40, 50}
CRON_JOBS = [
    cron(quotes_jobs.expire_quotes, second={15}, run_at_startup=True, unique=True),
    cron(purge_idempotency_keys, minute={7}, run_at_startup=False, unique=True),
    cron(vendor_jobs.schedule_due_syncs, second={0}, run_at_startup=False, unique=True),
    cron(vendor_jobs.recover_stale_syncs, second={s + 5 for s in EVERY_10_SECONDS}, run_at_startup=True, unique=True),
    cron(redispatch_jobs, second=EVERY_10_SECONDS, run_at_startup=True, unique=True),
    cron(purge_dispatched_jobs, minute={23}, second={0}, run_at_startup=False, unique=True),
    cron(ledger_jobs.recover_stale_imports, second={45}, run_at_startup=True, unique=True),
    cron(refunds_jobs.open_refund_cases_nightly, hour={2}, minute={15}, run_at_startup=False, unique=True),
    cron(refunds_jobs.refund_case_deadlines, hour={3}, minute={5}, run_at_startup=False, unique=True),
    cron(webhook_jobs.deliver_due_webhooks, second=set(range(0, 60, 5)), run_at_startup=True, unique=True),
    cron(vendor_jobs.warn_expiring_credentials, hour={6}, minute={5}, run_at_startup=True, unique=True),
    cron(webhook_jobs.purge_old_events, hour={3}, minute={17}, run_at_startup=False, unique=True),
]


def worker_settings(settings: Settings) -> type[Any]:
    """arq reads its configuration from a class; build one for these settings."""
    if not settings.redis_url:
        raise RuntimeError("no Redis configured: set ACORN_REDIS_URL or use `acorn-api dev`")

    class WorkerSettings:
        functions: ClassVar[list[WorkerCoroutine]] = FUNCTIONS
        cron_jobs: ClassVar[list[Any]] = CRON_JOBS
        on_startup = startup
        on_shutdown = shutdown
        redis_settings = queue_settings(settings.redis_url)  # type: ignore[arg-type]
        queue_name = settings.arq_queue_name
        job_timeout = 3600
        max_tries = 5
        ctx: ClassVar[dict[str, Any]] = {"settings": settings}

    return WorkerSettings


# ---------------------------------------------------------------- supervision and health

#: The worker refreshes its health key this often, and the key lives this long: a worker whose event loop is
#: stuck, or that lost Redis, lets it expire and ``acorn-api worker --check`` answers 1.
HEALTH_INTERVAL = 5.0
HEALTH_TTL = 20
RESTART_BACKOFF_INITIAL = 0.5
RESTART_BACKOFF_MAX = 30.0


def health_key(settings: Settings, host: str | None = None) -> str:
    """The Redis key a worker on ``host`` (default: this machine or container) refreshes while it runs."""
    return f"{settings.redis_key_prefix}:worker:health:{host or socket.gethostname()}"


async def _record_health(worker: Worker, settings: Settings, started: float) -> None:
    info = {
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - started),
        "jobs_complete": worker.jobs_complete,
        "jobs_failed": worker.jobs_failed,
        "jobs_ongoing": sum(not t.done() for t in worker.tasks.values()),
    }
    await worker.pool.set(health_key(settings), json.dumps(info), ex=HEALTH_TTL)


async def _stop(worker: Worker, main: asyncio.Task[None]) -> None:
    """Stop an arq worker whose Redis may be gone: cancel its jobs, run its shutdown, drop its pool.

    A cancelled sync keeps its run ``running``; its heartbeat goes stale and the recovery cron resumes it from
    the last committed page. (arq's own ``close`` waits on Redis and would raise again.)
    """
    for task in [main, *([worker.main_task] if worker.main_task else []), *worker.tasks.values()]:
        task.cancel()
    await asyncio.gather(main, *worker.tasks.values(), return_exceptions=True)
    if worker.on_shutdown is not None and "sessionmaker" in worker.ctx:
        try:
            await worker.on_shutdown(worker.ctx)
        except Exception as exc:
            log.warning("worker_shutdown_incomplete", error=f"{type(exc).__name__}: {exc}")
    pool = worker.ctx.get("redis")
    if pool is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.delete(health_key(worker.ctx["settings"])), 1)
        with contextlib.suppress(Exception):
            await pool.aclose(close_connection_pool=True)


async def supervise(settings: Settings, stop: asyncio.Event, *, handle_signals: bool = True) -> None:
    """Run the arq worker until ``stop`` is set (or SIGTERM/SIGINT), restarting it whenever it dies.

    arq's worker returns as soon as a Redis call fails (its poll loop does not retry), even for a 2-second blip.
    This loop starts a fresh worker after a backoff (0.5 s doubling to 30 s, reset after a healthy minute), so
    the process rides out Redis and PostgreSQL outages; jobs it was running are resumed by their own recovery.
    """
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    ws = worker_settings(settings)
    backoff = RESTART_BACKOFF_INITIAL
    while not stop.is_set():
        worker = create_worker(ws, handle_signals=False, ctx={"settings": settings})
        started = time.monotonic()
        main = asyncio.create_task(worker.async_run())
        stopping = asyncio.create_task(stop.wait())
        recorded = False
        try:
            while not main.done() and not stop.is_set():
                # every HEALTH_INTERVAL; every half second until the new worker has reported once
                wait = HEALTH_INTERVAL if recorded else 0.5
                await asyncio.wait({main, stopping}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if worker.ctx.get("redis") is not None and not main.done():
                    try:
                        await asyncio.wait_for(_record_health(worker, settings, started), HEALTH_INTERVAL)
                        recorded = True
                    except Exception as exc:
                        log.warning("worker_health_not_recorded", error=f"{type(exc).__name__}: {exc}")
            if main.done() and not main.cancelled() and main.exception() is not None:
                error = main.exception()
                log.warning(
                    "worker_stopped_unexpectedly",
                    error=f"{type(error).__name__}: {error}",
                    restart_in_s=backoff,
                )
        finally:
            stopping.cancel()
            await _stop(worker, main)
        if stop.is_set():
            break
        if time.monotonic() - started > 60:
            backoff = RESTART_BACKOFF_INITIAL
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
    log.info("worker_stopped")


def run(settings: Settings) -> None:
    """``acorn-api worker``: the supervised arq worker, until SIGTERM or SIGINT."""
    configure_logging(settings.log_level, json=settings.log_json)
    asyncio.run(supervise(settings, asyncio.Event()))


async def check_health(settings: Settings, host: str | None = None) -> tuple[bool, str | None]:
    """Whether the worker on ``host`` refreshed its health key lately (and what it reported)."""
    if not settings.redis_url:
        raise RuntimeError("no Redis configured: set ACORN_REDIS_URL")
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        value = await client.get(health_key(settings, host))
    except (RedisError, OSError) as exc:
        return False, f"Redis unreachable: {type(exc).__name__}"
    finally:
        await client.aclose()
    if value is None:
        return False, None
    return True, value.decode() if isinstance(value, bytes) else str(value)
