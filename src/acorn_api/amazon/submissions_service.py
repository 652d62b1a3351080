"""Invoice submissions: record, submit to Amazon, follow the transaction, retry. Flushes, never commits.

The job steps (``submit``, ``poll``) never call Amazon inside a transaction: they read what they need in one
short transaction, call Amazon with no database connection held, and write the outcome in another (which
re-checks that the submission is still in the state it read).

Transient failures (5xx, timeouts, connection errors, throttling, after the client's own quick retries) keep
the submission ``queued`` and try again with backoff, up to ``MAX_SUBMIT_ATTEMPTS``; then it is ``failed``
and a user may retry it. A submission that already has a transaction id (Amazon may have accepted it) has
that transaction checked first: Success or Processing is followed, only a Failure is submitted again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.amazon import crypto
from acorn_api.amazon.client import SpApiClient, format_datetime
from acorn_api.amazon.connections_service import CONNECTION_DELETED
from acorn_api.amazon.connector import ConnectionTarget
from acorn_api.amazon.endpoints import EndpointNotAllowed
from acorn_api.amazon.errors import SpApiError
from acorn_api.amazon.models import InvoiceSubmission
from acorn_api.amazon.repository import connections, invoice_submissions
from acorn_api.amazon.schemas import InvoiceSubmissionCreate
from acorn_api.amazon.wire import ApiResult, Transaction
from acorn_api.core.errors import Conflict, field_error
from acorn_api.core.jobs import enqueue_after_commit, transaction
from acorn_api.core.money import quantize
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.time import utcnow
from acorn_api.ledger import service as ledger_service
from acorn_api.ledger.archive import raw_documents

SUBMIT_INVOICE_JOB = "submit_invoice"
POLL_TRANSACTION_JOB = "poll_invoice_transaction"
MAX_SUBMIT_ATTEMPTS = 5
SUBMIT_BACKOFF = timedelta(seconds=30)
MAX_SUBMIT_BACKOFF = timedelta(minutes=15)
TRANSACTION_POLL_DELAY = timedelta(seconds=2)
MAX_TRANSACTION_POLLS = 60

ClientFor = Callable[[ConnectionTarget], SpApiClient]


def invoice_payload(data: InvoiceSubmissionCreate, total: Decimal) -> dict[str, Any]:
    """The submitInvoices wire shape of an ERP invoice."""
    items = []
    for item in data.items:
        line: dict[str, Any] = {
            "itemSequenceNumber": item.item_sequence_number,
            "invoicedQuantity": {"amount": item.quantity, "unitOfMeasure": "Eaches"},
            "netCost": {"currencyCode": data.currency, "amount": format(item.net_cost, "f")},
            "purchaseOrderNumber": item.purchase_order_number,
        }
        if item.asin:
            line["amazonProductIdentifier"] = item.asin
        if item.vendor_sku:
            line["vendorProductIdentifier"] = item.vendor_sku
        items.append(line)
    return {
        "invoiceType": data.invoice_type.value,
        "id": data.invoice_number,
        "date": format_datetime(data.date),
        "remitToParty": {"partyId": data.remit_to_party_id},
        "invoiceTotal": {"currencyCode": data.currency, "amount": format(total, "f")},
        "items": items,
    }


def _number_taken(number: str) -> Conflict:
    return Conflict(
        f"Invoice {number!r} was already submitted through this connection.",
        code="invoice_already_submitted",
        errors=[field_error(["body", "invoice_number"], "already submitted", "unique")],
    )


async def create_invoice_submission(
    session: AsyncSession, caller: Caller, data: InvoiceSubmissionCreate
) -> InvoiceSubmission:
    """Record the invoice and queue its submission; one submission per invoice number and connection."""
    connection = await connections.get(session, caller.account_id, data.connection_id)
    if await invoice_submissions.number_taken(session, caller.account_id, connection.id, data.invoice_number):
        raise _number_taken(data.invoice_number)
    total = (
        data.total
        if data.total is not None
        else quantize(sum((i.net_cost * i.quantity for i in data.items), Decimal(0)))
    )
    submission = InvoiceSubmission(
        connection_id=connection.id,
        invoice_number=data.invoice_number,
        invoice_type=data.invoice_type.value,
        purchase_order_numbers=sorted({i.purchase_order_number for i in data.items}),
        currency=data.currency,
        total_amount=total,
        payload=invoice_payload(data, total),
        status="queued",
    )
    try:
        async with session.begin_nested():
            invoice_submissions.add(session, caller.account_id, submission)
            await session.flush()
    except IntegrityError as exc:  # a concurrent request took the number between our check and our insert
        if "uq_invoice_submissions" not in str(exc.orig):
            raise
        raise _number_taken(data.invoice_number) from exc
    await session.refresh(submission)
    audit.record(
        session,
        caller,
        "invoice_submission.created",
        "invoice_submission",
        submission.id,
        after={"invoice_number": data.invoice_number, "total": total, "currency": data.currency},
    )
    enqueue_after_commit(
        session, SUBMIT_INVOICE_JOB, str(caller.account_id), str(submission.id), job_id=f"invoice:{submission.id}"
    )
    return submission


async def retry_invoice_submission(
    session: AsyncSession, caller: Caller, submission_id: uuid.UUID
) -> InvoiceSubmission:
    """Queue a failed submission again; if Amazon gave it a transaction, that transaction is checked before
    anything is resubmitted."""
    submission = await invoice_submissions.get_for_update(session, caller.account_id, submission_id)
    if submission.status != "failed":
        raise Conflict(
            f"Only a failed submission can be retried; this one is {submission.status}.",
            code="submission_not_failed",
        )
    await connections.get(session, caller.account_id, submission.connection_id)  # 404 once it was deleted
    before = {"status": submission.status, "errors": submission.errors}
    submission.status = "queued"
    submission.errors = []
    submission.completed_at = None
    submission.polls = 0
    await session.flush()
    await session.refresh(submission)
    audit.record(
        session,
        caller,
        "invoice_submission.retried",
        "invoice_submission",
        submission.id,
        before=before,
        after={"status": "queued"},
    )
    enqueue_after_commit(
        session,
        SUBMIT_INVOICE_JOB,
        str(caller.account_id),
        str(submission.id),
        job_id=f"invoice:{submission.id}:retry:{uuid.uuid4().hex[:8]}",
    )
    return submission


async def get_invoice_submission(session: AsyncSession, caller: Caller, submission_id: uuid.UUID) -> InvoiceSubmission:
    return await invoice_submissions.get(session, caller.account_id, submission_id)


async def list_invoice_submissions(
    session: AsyncSession, caller: Caller, page: PageParams, *, connection_id: uuid.UUID | None, status: str | None
) -> Slice[InvoiceSubmission]:
    stmt = invoice_submissions.filtered(caller.account_id, connection_id=connection_id, status=status)
    return await invoice_submissions.page(session, stmt, page)


# ---------------------------------------------------------------- job steps


@dataclass(frozen=True)
class Next:
    """Where a submission goes next: a job name and its delay (``None``: nothing), queued through the job outbox
    in the same transaction as the state it follows from, so a worker dying after the commit loses no step."""

    status: str
    job: str | None = None
    delay: timedelta = timedelta(0)
    attempt: int = 0


def _then(session: AsyncSession, account_id: uuid.UUID, submission_id: uuid.UUID, step: Next) -> Next:
    if step.job is not None:
        job_id = None
        if step.job == SUBMIT_INVOICE_JOB:
            job_id = f"invoice:{submission_id}:attempt:{step.attempt}:{uuid.uuid4().hex[:8]}"
        enqueue_after_commit(
            session,
            step.job,
            str(account_id),
            str(submission_id),
            job_id=job_id,
            account_id=account_id,
            defer_by=step.delay or None,
        )
    return step


def _error_entry(exc: BaseException, *, transient: bool, attempt: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "code": getattr(exc, "code", None) or getattr(exc, "kind", None) or type(exc).__name__,
        "message": getattr(exc, "message", None) or str(exc),
        "request_id": getattr(exc, "request_id", None),
    }
    if transient:
        entry["transient"] = True
        entry["attempt"] = attempt
    return entry


def _transient_attempts(errors: list[dict[str, Any]] | None) -> int:
    return sum(1 for e in errors or [] if e.get("transient"))


def _backoff(attempt: int) -> timedelta:
    delay: timedelta = SUBMIT_BACKOFF * 2 ** max(attempt - 1, 0)
    return min(delay, MAX_SUBMIT_BACKOFF)


async def _archive(
    session: AsyncSession, account_id: uuid.UUID, result: ApiResult[Any], source: str, metadata: dict[str, Any]
) -> uuid.UUID:
    archived = await raw_documents.store(
        session,
        account_id,
        result.raw,
        source=source,
        fetched_at=utcnow(),
        request_id=result.request_id,
        metadata=metadata,
    )
    return archived.id


def _finish(submission: InvoiceSubmission, status: str, errors: list[dict[str, Any]] | None = None) -> None:
    submission.status, submission.completed_at = status, utcnow()
    if errors is not None:
        submission.errors = errors


def _apply_transaction(submission: InvoiceSubmission, transaction: Transaction) -> bool:
    """Record Amazon's verdict; ``True`` while it is still Processing."""
    submission.transaction_status = transaction.status
    if transaction.status == "Success":
        _finish(submission, "succeeded")
        return False
    if transaction.status == "Failure":
        _finish(submission, "failed", [e.model_dump(exclude_none=True) for e in transaction.errors or []])
        return False
    return True


async def _enter_if_accepted(session: AsyncSession, account_id: uuid.UUID, submission: InvoiceSubmission) -> None:
    """An invoice Amazon accepted enters the ledger in the same transaction, with the submission as its source."""
    if submission.status == "succeeded":
        await ledger_service.record_accepted_submission(session, account_id, submission)


async def submit(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis | None,
    client_for: ClientFor,
    account_id: uuid.UUID,
    submission_id: uuid.UUID,
) -> Next:
    """Send a queued invoice to Amazon (checking a transaction it already has first); idempotent per state."""
    async with sessionmaker() as session, session.begin():
        submission = await invoice_submissions.get_for_update(session, account_id, submission_id)
        if submission.status != "queued":
            return Next(submission.status)
        connection = await connections.find(session, account_id, submission.connection_id)
        if connection is None:
            _finish(submission, "failed", [dict(CONNECTION_DELETED)])
            return Next("failed")
        target = ConnectionTarget.of(connection)
        payload = dict(submission.payload)
        known_transaction = submission.transaction_id
        attempt = _transient_attempts(submission.errors) + 1

    # outbound, with no database connection held
    checked: ApiResult[Transaction] | None = None
    sent: ApiResult[str] | None = None
    error: BaseException | None = None
    try:
        client = client_for(target)
        if known_transaction is not None:
            checked = await client.get_transaction(known_transaction)
        if checked is None or checked.value.status == "Failure":
            sent = await client.submit_invoices([payload])
    except (SpApiError, crypto.SecretsUnreadable, EndpointNotAllowed) as exc:
        error = exc

    async with transaction(sessionmaker, redis) as session:
        submission = await invoice_submissions.get_for_update(session, account_id, submission_id)
        if submission.status != "queued":
            return Next(submission.status)  # somebody else finished it meanwhile
        meta = {"invoice_submission_id": str(submission_id), "connection_id": str(target.id)}
        if checked is not None:
            await _archive(session, account_id, checked, "sp-api:getTransaction", meta)
            if checked.value.status != "Failure":
                submission.status = "submitted"
                still_processing = _apply_transaction(submission, checked.value)
                await _enter_if_accepted(session, account_id, submission)
                if still_processing:
                    return _then(
                        session,
                        account_id,
                        submission_id,
                        Next("submitted", POLL_TRANSACTION_JOB, TRANSACTION_POLL_DELAY),
                    )
                return Next(submission.status)
        if sent is not None:
            submission.raw_document_id = await _archive(session, account_id, sent, "sp-api:submitInvoices", meta)
            submission.status = "submitted"
            submission.transaction_id = sent.value
            submission.transaction_status = "Processing"
            submission.request_id = sent.request_id
            submission.submitted_at = utcnow()
            return _then(
                session, account_id, submission_id, Next("submitted", POLL_TRANSACTION_JOB, TRANSACTION_POLL_DELAY)
            )
        assert error is not None
        transient = bool(getattr(error, "retryable", False))
        if transient and attempt < MAX_SUBMIT_ATTEMPTS:
            submission.errors = [*(submission.errors or []), _error_entry(error, transient=True, attempt=attempt)]
            return _then(
                session, account_id, submission_id, Next("queued", SUBMIT_INVOICE_JOB, _backoff(attempt), attempt)
            )
        _finish(
            submission,
            "failed",
            [*(submission.errors or []), _error_entry(error, transient=transient, attempt=attempt)],
        )
        return Next("failed")


async def poll(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis | None,
    client_for: ClientFor,
    account_id: uuid.UUID,
    submission_id: uuid.UUID,
) -> Next:
    """Ask Amazon how the submission's transaction went, until Success or Failure (or too many polls)."""
    async with sessionmaker() as session, session.begin():
        submission = await invoice_submissions.get_for_update(session, account_id, submission_id)
        if submission.status != "submitted" or submission.transaction_id is None:
            return Next(submission.status)
        connection = await connections.find(session, account_id, submission.connection_id)
        if connection is None:
            _finish(submission, "failed", [dict(CONNECTION_DELETED)])
            return Next("failed")
        submission.polls += 1
        polls = submission.polls
        transaction_id = submission.transaction_id
        target = ConnectionTarget.of(connection)

    result: ApiResult[Transaction] | None = None
    error: BaseException | None = None
    try:
        result = await client_for(target).get_transaction(transaction_id)
    except (SpApiError, crypto.SecretsUnreadable, EndpointNotAllowed) as exc:
        error = exc

    async with transaction(sessionmaker, redis) as session:
        submission = await invoice_submissions.get_for_update(session, account_id, submission_id)
        if submission.status != "submitted" or submission.transaction_id != transaction_id:
            return Next(submission.status)
        if result is not None:
            await _archive(
                session,
                account_id,
                result,
                "sp-api:getTransaction",
                {"invoice_submission_id": str(submission_id), "transaction_id": transaction_id},
            )
            still_processing = _apply_transaction(submission, result.value)
            await _enter_if_accepted(session, account_id, submission)
            if not still_processing:
                return Next(submission.status)
            if polls >= MAX_TRANSACTION_POLLS:
                _finish(
                    submission, "failed", [{"code": "transaction_timeout", "message": "Amazon kept it Processing."}]
                )
                return Next("failed")
            return _then(
                session, account_id, submission_id, Next("submitted", POLL_TRANSACTION_JOB, TRANSACTION_POLL_DELAY)
            )
        assert error is not None
        if getattr(error, "retryable", False) and polls < MAX_TRANSACTION_POLLS:
            return _then(
                session, account_id, submission_id, Next("submitted", POLL_TRANSACTION_JOB, TRANSACTION_POLL_DELAY)
            )
        # the transaction id is kept: a retry checks it before submitting anything again
        _finish(submission, "failed", [_error_entry(error, transient=False)])
        return Next("failed")
