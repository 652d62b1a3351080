"""arq worker: job functions, cron jobs, and the resources each job gets through ``ctx``."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine

from acorn_api.amazon import jobs as vendor_jobs
from acorn_api.core.db import make_engine, make_sessionmaker
from acorn_api.core.idempotency import purge_expired
from acorn_api.core.jobs import job_session
from acorn_api.core.logging import configure_logging
from acorn_api.quotes import jobs as quotes_jobs
from acorn_api.reconciliation import jobs as reconciliation_jobs
from acorn_api.settings import Settings, get_settings


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


async def shutdown(ctx: dict[str, Any]) -> None:
    await vendor_jobs.close_vendor_resources(ctx)
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
]
CRON_JOBS = [
    cron(quotes_jobs.expire_quotes, second={15}, run_at_startup=True, unique=True),
    cron(purge_idempotency_keys, minute={7}, run_at_startup=False, unique=True),
    cron(vendor_jobs.schedule_due_syncs, second={0}, run_at_startup=False, unique=True),
    cron(vendor_jobs.recover_stale_syncs, second={30}, run_at_startup=True, unique=True),
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
        redis_settings = RedisSettings.from_dsn(settings.redis_url)  # type: ignore[arg-type]
        queue_name = settings.arq_queue_name
        job_timeout = 3600
        max_tries = 5
        ctx: ClassVar[dict[str, Any]] = {"settings": settings}

    return WorkerSettings
