"""arq jobs of the vendor connector. Each is idempotent: arq delivers at least once.

``ctx`` carries what ``worker.startup`` opened: ``settings``, ``sessionmaker``, ``redis`` (arq's), plus
``vendor_http`` (one ``httpx.AsyncClient`` per worker) and ``vendor_lwa_tokens`` (one ``LwaTokenCache``).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import structlog

from acorn_api.amazon import connections_service, connector, submissions_service, sync_service
from acorn_api.amazon.client import RetryPolicy, SpApiClient
from acorn_api.amazon.connector import ConnectionTarget, make_client
from acorn_api.amazon.sync import SyncContext, execute, recover_stale, requeue_orphans
from acorn_api.core.jobs import job_session
from acorn_api.core.time import utcnow
from acorn_api.settings import Settings

log = structlog.get_logger(__name__)

HTTP_KEY = "vendor_http"
TOKENS_KEY = "vendor_lwa_tokens"
SYNC_OPTIONS_KEY = "vendor_sync_options"  # tests and the bench tune retry/pacing through this
TRANSACTION_POLL_DELAY = submissions_service.TRANSACTION_POLL_DELAY
MAX_TRANSACTION_POLLS = submissions_service.MAX_TRANSACTION_POLLS


async def open_vendor_resources(ctx: dict[str, Any]) -> None:
    """Called by the worker's startup: one guarded HTTP client (connection pooling) and one LWA token cache."""
    settings: Settings = ctx["settings"]
    ctx[HTTP_KEY] = connector.http_client(settings)
    ctx[TOKENS_KEY] = connector.token_cache(settings)


async def close_vendor_resources(ctx: dict[str, Any]) -> None:
    http: httpx.AsyncClient | None = ctx.pop(HTTP_KEY, None)
    if http is not None:
        await http.aclose()


def sync_context(ctx: dict[str, Any]) -> SyncContext:
    if HTTP_KEY not in ctx:
        ctx[HTTP_KEY] = connector.http_client(ctx["settings"])
        ctx[TOKENS_KEY] = connector.token_cache(ctx["settings"])
    options: dict[str, Any] = ctx.get(SYNC_OPTIONS_KEY, {})
    return SyncContext(
        settings=ctx["settings"],
        sessionmaker=ctx["sessionmaker"],
        redis=ctx["redis"],
        http=ctx[HTTP_KEY],
        token_cache=ctx[TOKENS_KEY],
        **options,
    )


async def run_sync(ctx: dict[str, Any], account_id: str, run_id: str) -> str | None:
    """Run or resume one sync run; a delivery for a finished run, or one a live worker holds, does nothing."""
    return await execute(sync_context(ctx), uuid.UUID(account_id), uuid.UUID(run_id))


async def schedule_due_syncs(ctx: dict[str, Any]) -> int:
    """Cron, every minute: queue the scheduled syncs that are due (jobs leave after the commit)."""
    async with job_session(ctx) as session:
        queued = await sync_service.schedule_due(session)
    if queued:
        log.info("scheduled_syncs_queued", count=len(queued))
    return len(queued)


async def recover_stale_syncs(ctx: dict[str, Any]) -> int:
    """Cron, every 10 s: runs whose worker died (stale heartbeat) go back to the queue and resume; queued runs
    whose job was lost (Redis restarted without its data, a job that died before claiming) get a new job."""
    sync = sync_context(ctx)
    recovered = await recover_stale(sync)
    orphans = await requeue_orphans(sync)
    if recovered:
        log.warning("stale_syncs_recovered", count=len(recovered))
    if orphans:
        log.warning("orphaned_syncs_requeued", count=len(orphans))
    return len(recovered) + len(orphans)


def _client_for(ctx: dict[str, Any]) -> submissions_service.ClientFor:
    sync = sync_context(ctx)

    def client_for(target: ConnectionTarget) -> SpApiClient:
        return make_client(
            sync.settings,
            sync.redis,
            sync.http,
            sync.token_cache,
            target,
            retry=sync.retry or RetryPolicy(),
            rate_plans=sync.rate_plans,
        )

    return client_for


async def submit_invoice(ctx: dict[str, Any], account_id: str, submission_id: str) -> str:
    """Send a queued invoice to Amazon (submitInvoices) and start polling its transaction; a transient failure
    is tried again with backoff. A second delivery for a submission that is no longer queued does nothing."""
    step = await submissions_service.submit(
        ctx["sessionmaker"], ctx.get("redis"), _client_for(ctx), uuid.UUID(account_id), uuid.UUID(submission_id)
    )
    return step.status


async def poll_invoice_transaction(ctx: dict[str, Any], account_id: str, submission_id: str) -> str:
    """Ask Amazon how the submission's transaction went, until Success or Failure."""
    step = await submissions_service.poll(
        ctx["sessionmaker"], ctx.get("redis"), _client_for(ctx), uuid.UUID(account_id), uuid.UUID(submission_id)
    )
    return step.status


async def reencrypt_connection_secrets(ctx: dict[str, Any]) -> int:
    """Key rotation step 2: rewrite every stored secret under the first configured key (idempotent)."""
    async with job_session(ctx) as session:
        return await connections_service.reencrypt_secrets(session, ctx["settings"])


async def warn_expiring_credentials(ctx: dict[str, Any]) -> int:
    """Cron, daily: one ``connection.credentials_expiring`` event per connection and rotation date. Idempotent."""
    async with job_session(ctx) as session:
        return await connections_service.warn_expiring_credentials(session, utcnow().date())
