"""arq jobs of the vendor connector. Each is idempotent: arq delivers at least once.

``ctx`` carries what ``worker.startup`` opened: ``settings``, ``sessionmaker``, ``redis`` (arq's), plus
``vendor_http`` (one ``httpx.AsyncClient`` per worker) and ``vendor_lwa_tokens`` (one ``LwaTokenCache``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import structlog

from acorn_api.amazon import crypto, service
from acorn_api.amazon.client import RetryPolicy
from acorn_api.amazon.errors import SpApiError
from acorn_api.amazon.lwa import LwaTokenCache
from acorn_api.amazon.models import VendorConnection
from acorn_api.amazon.repository import connections, invoice_submissions
from acorn_api.amazon.sync import SyncContext, execute, make_client, recover_stale
from acorn_api.core.jobs import job_session
from acorn_api.core.time import utcnow
from acorn_api.ledger.archive import raw_documents
from acorn_api.settings import Settings

log = structlog.get_logger(__name__)

HTTP_KEY = "vendor_http"
TOKENS_KEY = "vendor_lwa_tokens"
SYNC_OPTIONS_KEY = "vendor_sync_options"  # tests and the bench tune retry/pacing through this
TRANSACTION_POLL_DELAY = timedelta(seconds=2)
MAX_TRANSACTION_POLLS = 60


async def open_vendor_resources(ctx: dict[str, Any]) -> None:
    """Called by the worker's startup: one HTTP client (connection pooling) and one LWA token cache."""
    ctx[HTTP_KEY] = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    ctx[TOKENS_KEY] = LwaTokenCache()


async def close_vendor_resources(ctx: dict[str, Any]) -> None:
    http: httpx.AsyncClient | None = ctx.pop(HTTP_KEY, None)
    if http is not None:
        await http.aclose()


def sync_context(ctx: dict[str, Any]) -> SyncContext:
    if HTTP_KEY not in ctx:
        ctx[HTTP_KEY] = httpx.AsyncClient()
        ctx[TOKENS_KEY] = LwaTokenCache()
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
        queued = await service.schedule_due(session)
    if queued:
        log.info("scheduled_syncs_queued", count=len(queued))
    return len(queued)


async def recover_stale_syncs(ctx: dict[str, Any]) -> int:
    """Cron, every minute: runs whose worker died (stale heartbeat) go back to the queue and resume."""
    recovered = await recover_stale(sync_context(ctx))
    redis = ctx["redis"]
    for account_id, run_id in recovered:
        await redis.enqueue_job(
            service.RUN_SYNC_JOB, str(account_id), str(run_id), _job_id=f"sync:{run_id}:recover:{uuid.uuid4().hex[:8]}"
        )
    if recovered:
        log.warning("stale_syncs_recovered", count=len(recovered))
    return len(recovered)


def _client(ctx: dict[str, Any], connection: VendorConnection) -> Any:
    sync = sync_context(ctx)
    return make_client(
        sync.settings,
        sync.redis,
        sync.http,
        sync.token_cache,
        connection,
        retry=sync.retry or RetryPolicy(),
        rate_plans=sync.rate_plans,
    )


async def submit_invoice(ctx: dict[str, Any], account_id: str, submission_id: str) -> str:
    """Send a queued invoice to Amazon (submitInvoices) and start polling its transaction.

    A second delivery after the transaction id was committed does not submit again. A worker that dies
    between Amazon's answer and our commit submits once more on redelivery; Amazon deduplicates invoices
    by their id, and the transaction status we poll is the one we stored.
    """
    account = uuid.UUID(account_id)
    async with job_session(ctx) as session:
        submission = await invoice_submissions.get_for_update(session, account, uuid.UUID(submission_id))
        if submission.status != "queued":
            return submission.status
        connection = await connections.find(session, account, submission.connection_id)
        if connection is None:
            submission.status, submission.completed_at = "failed", utcnow()
            submission.errors = [{"code": "connection_deleted", "message": "The connection was deleted."}]
            return submission.status
        try:
            result = await _client(ctx, connection).submit_invoices([submission.payload])
        except (SpApiError, crypto.SecretsUnreadable) as exc:
            submission.status, submission.completed_at = "failed", utcnow()
            submission.errors = [
                {
                    "code": getattr(exc, "code", None) or type(exc).__name__,
                    "message": getattr(exc, "message", str(exc)),
                    "request_id": getattr(exc, "request_id", None),
                }
            ]
            return submission.status
        archived = await raw_documents.store(
            session,
            account,
            result.raw,
            source="sp-api:submitInvoices",
            fetched_at=utcnow(),
            request_id=result.request_id,
            metadata={"invoice_submission_id": submission_id, "connection_id": str(connection.id)},
        )
        submission.status = "submitted"
        submission.transaction_id = result.value
        submission.transaction_status = "Processing"
        submission.request_id = result.request_id
        submission.submitted_at = utcnow()
        submission.raw_document_id = archived.id
    await ctx["redis"].enqueue_job(
        "poll_invoice_transaction", account_id, submission_id, _defer_by=TRANSACTION_POLL_DELAY
    )
    return "submitted"


async def poll_invoice_transaction(ctx: dict[str, Any], account_id: str, submission_id: str) -> str:
    """Ask Amazon how the submission's transaction went, until Success or Failure."""
    account = uuid.UUID(account_id)
    again = False
    async with job_session(ctx) as session:
        submission = await invoice_submissions.get_for_update(session, account, uuid.UUID(submission_id))
        if submission.status != "submitted" or submission.transaction_id is None:
            return submission.status
        connection = await connections.find(session, account, submission.connection_id)
        if connection is None:
            submission.status, submission.completed_at = "failed", utcnow()
            return submission.status
        submission.polls += 1
        try:
            result = await _client(ctx, connection).get_transaction(submission.transaction_id)
        except SpApiError as exc:
            again = exc.retryable and submission.polls < MAX_TRANSACTION_POLLS
            if not again:
                submission.status, submission.completed_at = "failed", utcnow()
                submission.errors = [
                    {"code": exc.code or exc.kind, "message": exc.message, "request_id": exc.request_id}
                ]
        else:
            await raw_documents.store(
                session,
                account,
                result.raw,
                source="sp-api:getTransaction",
                fetched_at=utcnow(),
                request_id=result.request_id,
                metadata={"invoice_submission_id": submission_id, "transaction_id": submission.transaction_id},
            )
            transaction = result.value
            submission.transaction_status = transaction.status
            if transaction.status == "Success":
                submission.status, submission.completed_at = "succeeded", utcnow()
            elif transaction.status == "Failure":
                submission.status, submission.completed_at = "failed", utcnow()
                submission.errors = [e.model_dump(exclude_none=True) for e in transaction.errors or []]
            elif submission.polls >= MAX_TRANSACTION_POLLS:
                submission.status, submission.completed_at = "failed", utcnow()
                submission.errors = [{"code": "transaction_timeout", "message": "Amazon kept it Processing."}]
            else:
                again = True
        status = submission.status
    if again:
        await ctx["redis"].enqueue_job(
            "poll_invoice_transaction", account_id, submission_id, _defer_by=TRANSACTION_POLL_DELAY
        )
    return status


async def reencrypt_connection_secrets(ctx: dict[str, Any]) -> int:
    """Key rotation step 2: rewrite every stored secret under the first configured key (idempotent)."""
    settings: Settings = ctx["settings"]
    async with job_session(ctx) as session:
        count = 0
        for account_id, connection_id in await connections.all_ids(session):
            connection = await connections.get_for_update(session, account_id, connection_id)
            for column in ("lwa_client_id_encrypted", "lwa_client_secret_encrypted", "lwa_refresh_token_encrypted"):
                value = getattr(connection, column)
                if value:
                    setattr(connection, column, crypto.rotate(settings, value))
            count += 1
        return count


async def warn_expiring_credentials(ctx: dict[str, Any]) -> int:
    """Cron, daily: one ``connection.credentials_expiring`` event per connection and rotation date, from
    ``ROTATION_WARNING_DAYS`` before the date on (an expired date included). Idempotent."""
    from acorn_api.amazon.router import connection_out
    from acorn_api.webhooks import events

    today = utcnow().date()
    async with job_session(ctx) as session:
        count = 0
        for connection in await connections.rotating_by(session, today + timedelta(days=service.ROTATION_WARNING_DAYS)):
            assert connection.credentials_rotate_by is not None
            marker = {"id": str(connection.id), "credentials_rotate_by": connection.credentials_rotate_by.isoformat()}
            if await events.exists(
                session, connection.account_id, events.EventType.connection_credentials_expiring, marker
            ):
                continue
            events.record(
                session,
                connection.account_id,
                events.EventType.connection_credentials_expiring,
                connection_out(connection),
            )
            count += 1
        return count
