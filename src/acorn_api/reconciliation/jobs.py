"""The matching job. arq delivers at least once; a second delivery recomputes the same result."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from acorn_api.core.jobs import job_session
from acorn_api.core.time import utcnow
from acorn_api.reconciliation import repository as repo
from acorn_api.reconciliation import service
from acorn_api.reconciliation.models import ReconciliationRun, RunKind, RunStatus

log = structlog.get_logger(__name__)


async def match_invoices(
    ctx: dict[str, Any], account_id: str, import_id: str | None = None, run_id: str | None = None
) -> str | None:
    """Match the invoices an import touched (``import_id``) or all of them, recording a run.

    Enqueued by the ledger import job with ``import_id`` (incremental), and by ``POST
    /v1/reconciliation/runs`` with ``run_id`` (full). A worker killed mid-match leaves its run ``running``;
    arq delivers the job again (after its in-progress timeout, or at once after a Redis data loss) and the
    delivery finishes that same run: an incremental one is found again by its import. An unexpected error
    marks the run failed and is not re-raised: arq would not retry it (DESIGN.md §8), and the next import or
    full run repairs everything because matching recomputes from the ledger.
    """
    account = uuid.UUID(account_id)
    imported = uuid.UUID(import_id) if import_id else None

    async with job_session(ctx) as session:
        if run_id is not None:
            run = await repo.runs.get_for_update(session, account, uuid.UUID(run_id))
            if run is None or run.status == RunStatus.succeeded:
                return None  # unknown (another account's id) or already done: a re-delivery
        else:
            if imported is not None and not await repo.import_exists(session, account, imported):
                log.warning("match_invoices_unknown_import", account_id=account_id, import_id=import_id)
                return None
            found = await repo.runs.unfinished_incremental_for_update(session, account, imported) if imported else None
            kind = RunKind.incremental if imported else RunKind.full
            run = found or repo.runs.add(
                session, account, ReconciliationRun(id=uuid.uuid4(), kind=kind, import_id=imported)
            )
        run.status = RunStatus.running
        run.started_at = utcnow()
        run_uuid = run.id

    try:
        async with job_session(ctx) as session:
            # the run row stays locked while matching: a second delivery of this job waits, then finds it done
            done = await repo.runs.get_for_update(session, account, run_uuid)
            if done is None or done.status == RunStatus.succeeded:
                return str(run_uuid)
            result = await service.match(session, account, imported)
            done.status = RunStatus.succeeded
            done.finished_at = utcnow()
            done.invoices_matched = result.invoices_matched
            done.newly_unexplained = result.newly_unexplained
            done.unmatched_payments = result.unmatched_payments
            done.journal_lines = result.journal_lines
            done.facts_applied = result.facts_applied
            done.timings_ms = result.timings_ms
            done.error = None
    except Exception as exc:
        log.exception("match_invoices_failed", account_id=account_id, import_id=import_id, run_id=str(run_uuid))
        async with job_session(ctx) as session:
            failed = await repo.runs.get_for_update(session, account, run_uuid)
            if failed is not None:
                failed.status = RunStatus.failed
                failed.finished_at = utcnow()
                failed.error = {"type": type(exc).__name__, "message": str(exc)[:500]}
    return str(run_uuid)
