"""The ledger's rules: accepting report files, loading them all-or-nothing, and reading the ledger back.

Upload (API process): the file is hashed and archived in chunks straight from the spooled upload, an
``imports`` row is created, and the ``load_import`` job is enqueued after commit. The same bytes uploaded
again as the same report are the earlier import.

Load (worker): parse in a thread → ``COPY`` into staging → under the account's ledger-writer lock, set-based
inserts of the natural keys the ledger lacks (deduplicated once, no ``ON CONFLICT``) → import status, in one
transaction. A worker that dies mid-load leaves nothing (the
transaction never committed) and the import is loaded again by the next delivery or by the stale-import
recovery job.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller
from acorn_api.core.errors import Conflict, NotFound, PayloadTooLarge, invalid_field
from acorn_api.core.ids import uuid7
from acorn_api.core.jobs import enqueue_after_commit
from acorn_api.core.pagination import PageParams, Slice
from acorn_api.core.time import utcnow
from acorn_api.ledger.archive import raw_documents
from acorn_api.ledger.importer import FileParser, XlsxLimits
from acorn_api.ledger.models import (
    EntryType,
    Import,
    ImportMapping,
    ImportStatus,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Payment,
    PaymentLine,
    ReportType,
)
from acorn_api.ledger.parsing import FileProblem
from acorn_api.ledger.reports import SUPPORTED_REPORT_TYPES, Record, natural_key
from acorn_api.ledger.repository import (
    EntryFilters,
    Stage,
    driver_connection,
    entries,
    imports,
    invoices,
    lock_ledger,
    mappings,
    payments,
)
from acorn_api.ledger.schemas import ImportOut, MappingCreate, MappingUpdate
from acorn_api.settings import Settings
from acorn_api.stores.repository import stores
from acorn_api.webhooks import events
from acorn_api.webhooks.events import EventType

log = structlog.get_logger(__name__)

HASH_CHUNK = 1024 * 1024
MAX_ATTEMPTS = 3
CONTENT_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


# --- upload ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    file: BinaryIO  # the spooled upload (on disk beyond 1 MB), read in chunks
    file_name: str | None
    report_type: ReportType
    mapping_id: uuid.UUID | None
    store_id: uuid.UUID | None
    reject_file_on_errors: bool
    date_format: str | None


def _hash_and_size(file: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    file.seek(0)
    while chunk := file.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return digest.hexdigest(), size


async def create_import(
    session: AsyncSession, caller: Caller, upload: Upload, settings: Settings
) -> tuple[Import, bool]:
    """Archive the file and queue its import; the same file again is the earlier import (``created`` False).

    A failed earlier import of the same file is queued again with the new options (mapping, date format).
    """
    if upload.report_type not in SUPPORTED_REPORT_TYPES:
        raise invalid_field(["body", "report_type"], f"{upload.report_type} files are not imported yet")
    account_id = caller.account_id
    # An unknown (or another account's) id inside the form is a 422 naming the field, as for every other
    # reference in a request body (a quote's item_id or store_id); 404 is for the resource in the path.
    if upload.store_id is not None and await stores.find(session, account_id, upload.store_id) is None:
        raise invalid_field(["body", "store_id"], "no such store in this account", "not_found")
    if upload.mapping_id is not None:
        mapping = await mappings.find(session, account_id, upload.mapping_id)
        if mapping is None:
            raise invalid_field(["body", "mapping_id"], "no such import mapping in this account", "not_found")
        if mapping.report_type != upload.report_type:
            raise invalid_field(["body", "mapping_id"], f"the mapping is for {mapping.report_type} reports")
    sha256, size = await asyncio.to_thread(_hash_and_size, upload.file)
    if size > settings.max_import_bytes:
        raise PayloadTooLarge(f"The file is larger than {settings.max_import_bytes} bytes.")
    if size == 0:
        raise invalid_field(["body", "file"], "the file is empty")

    earlier = await imports.by_hash(session, account_id, upload.report_type, sha256)
    if earlier is not None:
        if earlier.status != ImportStatus.failed:
            return earlier, False
        _requeue(earlier, upload)
        enqueue_after_commit(session, "load_import", str(account_id), str(earlier.id))
        return earlier, True

    archived = await raw_documents.store_file(
        session,
        account_id,
        upload.file,
        sha256=sha256,
        size_bytes=size,
        source=f"import:{upload.report_type.value}",
        fetched_at=utcnow(),
        content_type=CONTENT_TYPES["xlsx" if _is_zip(upload.file) else "csv"],
        metadata={"file_name": upload.file_name},
    )
    row = Import(
        id=uuid.uuid4(),
        report_type=upload.report_type.value,
        status=ImportStatus.queued,
        file_name=upload.file_name,
        sha256=sha256,
        size_bytes=size,
        raw_document_id=archived.id,
        store_id=upload.store_id,
        mapping_id=upload.mapping_id,
        reject_file_on_errors=upload.reject_file_on_errors,
        date_format=upload.date_format,
        created_by=caller.credential_id,
        row_errors=[],
    )
    try:
        async with session.begin_nested():
            imports.add(session, account_id, row)
            await session.flush()
    except IntegrityError:
        # the same file uploaded concurrently: the other upload won
        winner = await imports.by_hash(session, account_id, upload.report_type, sha256)
        if winner is None:
            raise
        return winner, False
    enqueue_after_commit(session, "load_import", str(account_id), str(row.id))
    return row, True


def _is_zip(file: BinaryIO) -> bool:
    file.seek(0)
    head = file.read(4)
    file.seek(0)
    return head == b"PK\x03\x04"


def _requeue(row: Import, upload: Upload) -> None:
    row.status = ImportStatus.queued
    row.mapping_id = upload.mapping_id
    row.store_id = upload.store_id
    row.reject_file_on_errors = upload.reject_file_on_errors
    row.date_format = upload.date_format
    row.error = None
    row.row_errors = []
    row.rows_total = row.rows_loaded = row.rows_duplicate = row.rows_rejected = 0
    row.started_at = row.finished_at = None
    row.detected_format = row.encoding = None


async def get_import(session: AsyncSession, caller: Caller, import_id: uuid.UUID) -> Import:
    return await imports.get(session, caller.account_id, import_id)


async def list_imports(
    session: AsyncSession, caller: Caller, page: PageParams, *, report_type: str | None, status: str | None
) -> Slice[Import]:
    stmt = imports.select_matching(caller.account_id, report_type=report_type, status=status)
    return await imports.page(session, stmt, page)


# --- mappings ----------------------------------------------------------------------------------------


async def create_mapping(session: AsyncSession, caller: Caller, body: MappingCreate) -> ImportMapping:
    """A named header mapping for one report type; its target fields must be fields of that report."""
    unknown = body.unknown_fields()
    if unknown:
        raise invalid_field(["body", "columns"], f"not fields of {body.report_type} reports: {', '.join(unknown)}")
    if await mappings.name_taken(session, caller.account_id, body.report_type, body.name, None):
        raise Conflict(f"A {body.report_type} mapping named {body.name!r} exists already.", code="mapping_name_taken")
    row = ImportMapping(
        id=uuid.uuid4(),
        report_type=body.report_type.value,
        name=body.name,
        columns=body.columns,
        is_default=body.is_default,
    )
    mappings.add(session, caller.account_id, row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_mapping(
    session: AsyncSession, caller: Caller, mapping_id: uuid.UUID, body: MappingUpdate
) -> ImportMapping:
    row = await mappings.get_for_update(session, caller.account_id, mapping_id)
    if body.columns is not None:
        probe = MappingCreate(report_type=ReportType(row.report_type), name=row.name, columns=body.columns)
        unknown = probe.unknown_fields()
        if unknown:
            raise invalid_field(["body", "columns"], f"not fields of {row.report_type} reports: {', '.join(unknown)}")
        row.columns = body.columns
    if body.name is not None and body.name != row.name:
        if await mappings.name_taken(session, caller.account_id, row.report_type, body.name, row.id):
            raise Conflict(
                f"A {row.report_type} mapping named {body.name!r} exists already.", code="mapping_name_taken"
            )
        row.name = body.name
    if body.is_default is not None:
        row.is_default = body.is_default
    await session.flush()
    await session.refresh(row)
    return row


async def get_mapping(session: AsyncSession, caller: Caller, mapping_id: uuid.UUID) -> ImportMapping:
    return await mappings.get(session, caller.account_id, mapping_id)


async def list_mappings(
    session: AsyncSession, caller: Caller, page: PageParams, *, report_type: str | None
) -> Slice[ImportMapping]:
    return await mappings.page(session, mappings.select_matching(caller.account_id, report_type=report_type), page)


async def delete_mapping(session: AsyncSession, caller: Caller, mapping_id: uuid.UUID) -> None:
    """Imports that used the mapping keep their results; their ``mapping_id`` becomes null."""
    await mappings.get(session, caller.account_id, mapping_id)
    await mappings.delete(session, caller.account_id, mapping_id)


# --- load (worker) -----------------------------------------------------------------------------------


async def start(session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID) -> Import | None:
    """Mark the import running for one more attempt; None when it is finished (a repeated delivery)."""
    row = await imports.get_for_update(session, account_id, import_id)
    if row.status in (ImportStatus.succeeded, ImportStatus.failed):
        return None
    row.status = ImportStatus.running
    row.attempts += 1
    row.started_at = utcnow()
    await session.flush()
    return row


_DONE = object()


async def _parsed_batches(parser: FileParser) -> AsyncIterator[list[Record]]:
    """The parser's batches, produced in a thread while the caller copies the previous ones."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in parser.batches():
                while not stop.is_set():
                    try:
                        handoff.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(exc)

    thread = threading.Thread(target=produce, name="import-parser", daemon=True)
    thread.start()
    try:
        while True:
            item = await asyncio.to_thread(handoff.get)
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)


async def load(
    session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID, path: Path, settings: Settings
) -> str:
    """Load a spooled import file into the ledger, all or nothing, in the session's transaction.

    Returns the final status. Holds the import row locked throughout, so a second delivery of the same job
    waits and then finds it finished.
    """
    row = await imports.get_for_update(session, account_id, import_id)
    if row.status in (ImportStatus.succeeded, ImportStatus.failed):
        return row.status
    mapping_columns: dict[str, str] = {}
    mapping = (
        await mappings.find(session, account_id, row.mapping_id)
        if row.mapping_id
        else await mappings.default_for(session, account_id, row.report_type)
    )
    if mapping is not None:
        mapping_columns = dict(mapping.columns)
    store = await stores.find(session, account_id, row.store_id) if row.store_id else None
    parser = FileParser(
        path,
        row.report_type,
        mapping=mapping_columns,
        date_format=row.date_format,
        default_currency=store.currency if store else None,
        xlsx_limits=XlsxLimits(settings.max_xlsx_uncompressed_bytes, settings.max_xlsx_compression_ratio),
    )
    conn = await driver_connection(session)
    stage = Stage(conn, import_id)
    await stage.create()
    result = parser.result
    started = time.perf_counter()
    try:
        async for batch in _parsed_batches(parser):
            await stage.copy(batch)
        stage.timings["parse_and_copy"] = round(time.perf_counter() - started, 3)
        fmt = result.date_format
        if result.rows_rejected == 0 or not row.reject_file_on_errors:
            unknown = await stage.unknown_store_codes(account_id) if row.report_type == ReportType.invoices else []
            for line, code in unknown:
                result.reject(line, "store_code", code, "no store with this code")
            if unknown:
                await stage.drop_rows([line for line, _ in unknown])
    except FileProblem as problem:
        await stage.drop()
        return _finish_failed(session, row, parser, problem.as_dict())
    if result.rows_rejected and row.reject_file_on_errors:
        await stage.drop()
        rows_problem = {
            "code": "rows_invalid",
            "message": f"{result.rows_rejected} of {result.rows_total} rows are invalid, so the file was not "
            "loaded (reject_file_on_errors). Fix them, or upload with reject_file_on_errors=false to load the "
            "valid rows.",
        }
        return _finish_failed(session, row, parser, rows_problem)
    if fmt is not None:
        await stage.copy_dates(result.dates.mapping(fmt))
    source = "remittance" if row.report_type == ReportType.remittance else "import"
    loaded = await stage.load(account_id, import_id, row.store_id, row.created_at.astimezone(UTC).date(), source)
    log.info("import_loaded", import_id=str(import_id), rows=result.rows_total, seconds=stage.timings)
    await stage.drop()
    _fill(row, parser)
    row.rows_loaded = loaded
    row.rows_duplicate = result.rows_total - result.rows_rejected - loaded
    row.status = ImportStatus.succeeded
    row.error = None
    row.finished_at = utcnow()
    await session.flush()
    await session.refresh(row)
    events.record(session, account_id, EventType.import_succeeded, ImportOut.model_validate(row))
    enqueue_after_commit(session, "open_refund_cases", str(account_id), str(import_id))
    enqueue_after_commit(session, "match_invoices", str(account_id), str(import_id))
    return row.status


def _fill(row: Import, parser: FileParser) -> None:
    result = parser.result
    row.detected_format = result.detected_format
    row.encoding = result.encoding
    row.date_format = result.date_format
    row.rows_total = result.rows_total
    row.rows_rejected = result.rows_rejected
    row.row_errors = result.row_errors


def _finish_failed(session: AsyncSession, row: Import, parser: FileParser, problem: dict[str, Any]) -> str:
    _fill(row, parser)
    row.rows_loaded = row.rows_duplicate = 0
    row.status = ImportStatus.failed
    row.error = problem
    row.finished_at = utcnow()
    row.updated_at = utcnow()
    events.record(session, row.account_id, EventType.import_failed, ImportOut.model_validate(row))
    return row.status


async def fail_stale(session: AsyncSession, account_id: uuid.UUID, import_id: uuid.UUID, reason: str) -> None:
    """Give up on an import that keeps dying (``MAX_ATTEMPTS``); nothing of it was loaded."""
    row = await imports.get_for_update(session, account_id, import_id)
    if row.status in (ImportStatus.succeeded, ImportStatus.failed):
        return
    row.status = ImportStatus.failed
    row.error = {"code": "load_failed", "message": reason}
    row.finished_at = utcnow()
    await session.flush()
    await session.refresh(row)
    events.record(session, account_id, EventType.import_failed, ImportOut.model_validate(row))


async def recover_stale(session: AsyncSession, older_than_seconds: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Re-enqueue imports whose job was lost or whose worker died; fail those out of attempts."""
    found = await imports.stale_running(session, older_than_seconds)
    requeued: list[tuple[uuid.UUID, uuid.UUID]] = []
    for account_id, import_id in found:
        row = await imports.get(session, account_id, import_id)
        if row.attempts >= MAX_ATTEMPTS:
            await fail_stale(session, account_id, import_id, f"The load stopped {row.attempts} times; upload again.")
            continue
        row.updated_at = utcnow()  # not picked up again until it is stale again
        enqueue_after_commit(session, "load_import", str(account_id), str(import_id))
        requeued.append((account_id, import_id))
    await session.flush()
    return requeued


# --- reads -------------------------------------------------------------------------------------------


async def list_entries(
    session: AsyncSession, caller: Caller, filters: EntryFilters, page: PageParams
) -> Slice[LedgerEntry]:
    return await entries.page(session, entries.filtered(caller.account_id, filters), page)


async def stream_entries(
    session: AsyncSession, caller: Caller, filters: EntryFilters, batch: int = 2000
) -> AsyncIterator[list[LedgerEntry]]:
    """Every matching entry, newest first, in keyset batches (an export never holds the whole result)."""
    cursor: str | None = None
    while True:
        page = await entries.page(session, entries.filtered(caller.account_id, filters), PageParams(batch, cursor))
        if page.rows:
            yield page.rows
        if not page.has_more:
            return
        cursor = page.next_cursor
        session.expunge_all()


async def list_invoices(
    session: AsyncSession, caller: Caller, page: PageParams, *, po_number: str | None, source: str | None
) -> Slice[Invoice]:
    stmt = invoices.select_matching(caller.account_id, po_number=po_number, source=source)
    return await invoices.page(session, stmt, page)


async def get_invoice(
    session: AsyncSession, caller: Caller, number: str
) -> tuple[Invoice, list[LedgerEntry], Decimal, list[InvoiceLine]]:
    """The invoice, every entry on it (invoice, payments, deductions, reversals), its open balance and lines."""
    row = await invoices.by_number(session, caller.account_id, number)
    if row is None:
        raise NotFound("No such invoice.")
    touching = list(await entries.touching_invoice(session, caller.account_id, number))
    balance = sum((e.amount for e in touching if e.currency == row.currency), Decimal(0))
    lines = list(await invoices.lines(session, caller.account_id, number))
    return row, touching, balance, lines


async def get_payment(session: AsyncSession, caller: Caller, number: str) -> tuple[Payment, list[PaymentLine]]:
    row = await payments.by_number(session, caller.account_id, number)
    if row is None:
        raise NotFound("No such payment.")
    return row, list(await payments.lines(session, caller.account_id, number))


# --- invoice submissions accepted by Amazon ----------------------------------------------------------


class AcceptedSubmission(Protocol):
    """What the ledger reads of an invoice submission (amazon.models.InvoiceSubmission; no import of it:
    the connector depends on the ledger, never the reverse)."""

    id: uuid.UUID
    invoice_number: str
    invoice_type: str
    purchase_order_numbers: list[str]
    currency: str
    total_amount: Decimal
    payload: dict[str, Any]


async def record_accepted_submission(
    session: AsyncSession, account_id: uuid.UUID, submission: AcceptedSubmission
) -> LedgerEntry | None:
    """Enter an invoice Amazon accepted through the connector: one entry per submission, ever.

    The entry's natural key is ``submission:<id>``, so a repeated poll adds nothing. An invoice already
    known by number (from an ERP file or a remittance) is not entered twice; a credit note is an
    ``adjustment`` entry (negative), without an ``invoices`` row.
    """
    key = natural_key("submission", str(submission.id))
    # the same lock an import's load takes: its anti-joins and inserts see this entry and invoice, or wait
    await lock_ledger(session, account_id)
    if await entries.by_natural_key(session, account_id, key) is not None:
        return None
    is_credit = submission.invoice_type == "CreditNote"
    if not is_credit and await invoices.by_number(session, account_id, submission.invoice_number) is not None:
        return None
    payload = submission.payload
    when = _payload_date(payload.get("date"))
    vendor_code = (payload.get("remitToParty") or {}).get("partyId")
    store = await stores.first_with_vendor_code(session, account_id, vendor_code) if vendor_code else None
    po_number = submission.purchase_order_numbers[0] if len(submission.purchase_order_numbers) == 1 else None
    amount = -abs(submission.total_amount) if is_credit else submission.total_amount
    entry = LedgerEntry(
        id=uuid7(),
        entry_type=(EntryType.adjustment if is_credit else EntryType.invoice).value,
        amount=amount,
        currency=submission.currency,
        occurred_on=when,
        invoice_number=submission.invoice_number,
        po_number=po_number,
        vendor_code=vendor_code,
        store_id=store.id if store else None,
        reference=submission.invoice_number if is_credit else None,
        description="credit note accepted by Amazon" if is_credit else "invoice accepted by Amazon",
        source_submission_id=submission.id,
        raw={},
        natural_key=key,
    )
    entries.add(session, account_id, entry)
    if not is_credit:
        invoices.add(
            session,
            account_id,
            Invoice(
                id=uuid.uuid4(),
                invoice_number=submission.invoice_number,
                invoice_date=when,
                po_number=po_number,
                vendor_code=vendor_code,
                store_id=entry.store_id,
                amount=amount,
                currency=submission.currency,
                source="submission",
                source_submission_id=submission.id,
                ledger_entry_id=entry.id,
            ),
        )
    await session.flush()
    return entry


def _payload_date(value: Any) -> date:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()
        except ValueError:
            pass
    return utcnow().date()


def iter_csv_lines(rows: list[LedgerEntry], columns: tuple[str, ...]) -> Iterator[list[str]]:
    for e in rows:
        yield ["" if getattr(e, c) is None else str(getattr(e, c)) for c in columns]
