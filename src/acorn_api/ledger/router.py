"""HTTP for /v1/imports, /v1/import-mappings, /v1/ledger/entries, /v1/invoices and /v1/payments."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.accounts.auth import Caller
from acorn_api.core.db import Session, get_resources
from acorn_api.core.deps import AppSettings
from acorn_api.core.errors import problems
from acorn_api.core.pagination import Page, Pagination
from acorn_api.ledger import service
from acorn_api.ledger.auth import ImportsWrite, LedgerRead
from acorn_api.ledger.models import EntryType, ImportStatus, ReportType
from acorn_api.ledger.parsing import DATE_FORMATS, clean_file_name
from acorn_api.ledger.repository import EntryFilters
from acorn_api.ledger.schemas import (
    ImportOut,
    InvoiceDetail,
    InvoiceLineOut,
    InvoiceOut,
    IsoDate,
    LedgerEntryOut,
    MappingCreate,
    MappingDeleted,
    MappingOut,
    MappingUpdate,
    PaymentDetail,
    PaymentLineOut,
    PaymentOut,
    PlainText,
)

imports_router = APIRouter(prefix="/v1/imports", tags=["imports"])
mappings_router = APIRouter(prefix="/v1/import-mappings", tags=["imports"])
ledger_router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
invoices_router = APIRouter(prefix="/v1/invoices", tags=["ledger"])
payments_router = APIRouter(prefix="/v1/payments", tags=["ledger"])

DateFormat = StrEnum("DateFormat", {name: name for name in DATE_FORMATS})  # type: ignore[misc]

UPLOAD_DESCRIPTION = """\
Upload a Vendor Central report (or an ERP invoice file) as `multipart/form-data`: the file in `file`, the
report in `report_type`. The file is archived (SHA-256) and loaded by a background job: the answer is
**202** with the import (`status: queued`) and its `Location`; poll it until `succeeded` or `failed`.

The same file uploaded again as the same report answers **200** with the earlier import (nothing is loaded
twice); if the earlier import failed it is queued again with the options of this upload.

* `mapping_id`: a mapping of renamed columns (`/v1/import-mappings`); without it the report type's
  default mapping, if any, applies.
* `store_id`: the store of every row; otherwise a row's vendor code picks the store that has it.
* an unknown `mapping_id` or `store_id` (or one of another account) answers 422 naming the field.
* `reject_file_on_errors` (default true): any invalid row fails the whole file; false loads the valid rows
  and reports the others.
* `date_format`: the file's date format, when its dates cannot tell day from month (every day ≤ 12).

Files larger than `ACORN_MAX_IMPORT_BYTES` (default 200 MB) answer 413.
"""


@imports_router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a report file to import",
    description=UPLOAD_DESCRIPTION,
    operation_id="create_import",
    responses={
        200: {"model": ImportOut, "description": "The same file was imported before"},
        **problems(403, 413),
    },
)
async def create_import(
    request: Request,
    response: Response,
    caller: ImportsWrite,
    session: Session,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="the report, CSV or XLSX")],
    report_type: Annotated[ReportType, Form()],
    mapping_id: Annotated[uuid.UUID | None, Form()] = None,
    store_id: Annotated[uuid.UUID | None, Form()] = None,
    reject_file_on_errors: Annotated[bool, Form()] = True,
    date_format: Annotated[DateFormat | None, Form()] = None,
) -> ImportOut:
    upload = service.Upload(
        file=file.file,
        file_name=clean_file_name(file.filename),
        report_type=report_type,
        mapping_id=mapping_id,
        store_id=store_id,
        reject_file_on_errors=reject_file_on_errors,
        date_format=date_format.value if date_format else None,
    )
    row, created = await service.create_import(session, caller, upload, settings)
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/imports/{row.id}"
    return ImportOut.model_validate(row)


@imports_router.get("", summary="List imports", operation_id="list_imports", responses=problems(403))
async def list_imports(
    caller: LedgerRead,
    session: Session,
    page: Pagination,
    report_type: ReportType | None = None,
    status_: Annotated[ImportStatus | None, Query(alias="status")] = None,
) -> Page[ImportOut]:
    result = await service.list_imports(
        session,
        caller,
        page,
        report_type=report_type.value if report_type else None,
        status=status_.value if status_ else None,
    )
    return Page.of(result, ImportOut.model_validate)


@imports_router.get("/{import_id}", summary="Get an import", operation_id="get_import", responses=problems(403, 404))
async def get_import(import_id: uuid.UUID, caller: LedgerRead, session: Session) -> ImportOut:
    return ImportOut.model_validate(await service.get_import(session, caller, import_id))


# --- mappings ----------------------------------------------------------------------------------------


@mappings_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an import mapping",
    description="Maps the file's column names to ACORN's fields for one report type, e.g. "
    '`{"Amount Paid": "amount_paid"}`, so a renamed column needs no release.',
    operation_id="create_import_mapping",
    responses=problems(403, 409),
)
async def create_mapping(body: MappingCreate, caller: ImportsWrite, session: Session) -> MappingOut:
    return MappingOut.model_validate(await service.create_mapping(session, caller, body))


@mappings_router.get("", summary="List import mappings", operation_id="list_import_mappings", responses=problems(403))
async def list_mappings(
    caller: LedgerRead, session: Session, page: Pagination, report_type: ReportType | None = None
) -> Page[MappingOut]:
    result = await service.list_mappings(session, caller, page, report_type=report_type.value if report_type else None)
    return Page.of(result, MappingOut.model_validate)


@mappings_router.get(
    "/{mapping_id}", summary="Get an import mapping", operation_id="get_import_mapping", responses=problems(403, 404)
)
async def get_mapping(mapping_id: uuid.UUID, caller: LedgerRead, session: Session) -> MappingOut:
    return MappingOut.model_validate(await service.get_mapping(session, caller, mapping_id))


@mappings_router.patch(
    "/{mapping_id}",
    summary="Change an import mapping",
    operation_id="update_import_mapping",
    responses=problems(403, 404, 409),
)
async def update_mapping(
    mapping_id: uuid.UUID, body: MappingUpdate, caller: ImportsWrite, session: Session
) -> MappingOut:
    return MappingOut.model_validate(await service.update_mapping(session, caller, mapping_id, body))


@mappings_router.delete(
    "/{mapping_id}",
    summary="Delete an import mapping",
    operation_id="delete_import_mapping",
    responses=problems(403, 404),
)
async def delete_mapping(mapping_id: uuid.UUID, caller: ImportsWrite, session: Session) -> MappingDeleted:
    await service.delete_mapping(session, caller, mapping_id)
    return MappingDeleted(id=mapping_id, deleted=True)


# --- ledger ------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "entry_type",
    "amount",
    "currency",
    "occurred_on",
    "due_on",
    "invoice_number",
    "payment_number",
    "po_number",
    "asin",
    "vendor_code",
    "store_id",
    "reference",
    "description",
    "quantity",
    "source_import_id",
    "source_row",
    "source_submission_id",
    "natural_key",
    "created_at",
)


@ledger_router.get(
    "/entries",
    summary="List ledger entries",
    description="Newest first, cursor-paginated; `format=csv` streams every matching entry as CSV instead "
    "(columns: " + ", ".join(CSV_COLUMNS) + "). Amounts: + owed to the vendor, − taken by Amazon or settled.",
    operation_id="list_ledger_entries",
    response_model=Page[LedgerEntryOut],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **problems(403)},
)
async def list_entries(
    request: Request,
    caller: LedgerRead,
    session: Session,
    page: Pagination,
    entry_type: EntryType | None = None,
    store_id: uuid.UUID | None = None,
    vendor_code: Annotated[PlainText | None, Query(max_length=32)] = None,
    invoice_number: Annotated[PlainText | None, Query(max_length=64)] = None,
    payment_number: Annotated[PlainText | None, Query(max_length=64)] = None,
    po_number: Annotated[PlainText | None, Query(max_length=64)] = None,
    import_id: uuid.UUID | None = None,
    occurred_from: IsoDate | None = None,
    occurred_to: IsoDate | None = None,
    amount_min: Annotated[Decimal | None, Query(allow_inf_nan=False, max_digits=20, decimal_places=4)] = None,
    amount_max: Annotated[Decimal | None, Query(allow_inf_nan=False, max_digits=20, decimal_places=4)] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    filters = EntryFilters(
        entry_type=entry_type.value if entry_type else None,
        store_id=store_id,
        vendor_code=vendor_code,
        invoice_number=invoice_number,
        payment_number=payment_number,
        po_number=po_number,
        source_import_id=import_id,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
        amount_min=amount_min,
        amount_max=amount_max,
    )
    if format == "csv":
        body = _export(get_resources(request).sessionmaker, caller, filters)
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="ledger-entries.csv"'},
        )
    result = await service.list_entries(session, caller, filters, page)
    return Page.of(result, LedgerEntryOut.model_validate)


async def _export(
    sessionmaker: async_sessionmaker[AsyncSession], caller: Caller, filters: EntryFilters
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    async with sessionmaker() as session:
        async for rows in service.stream_entries(session, caller, filters):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(service.iter_csv_lines(rows, CSV_COLUMNS))
            yield buffer.getvalue().encode()


@invoices_router.get("", summary="List invoices", operation_id="list_invoices", responses=problems(403))
async def list_invoices(
    caller: LedgerRead,
    session: Session,
    page: Pagination,
    po_number: Annotated[PlainText | None, Query(max_length=64)] = None,
    source: Literal["import", "remittance", "submission"] | None = None,
) -> Page[InvoiceOut]:
    result = await service.list_invoices(session, caller, page, po_number=po_number, source=source)
    return Page.of(result, InvoiceOut.model_validate)


@invoices_router.get(
    "/{invoice_number}",
    summary="Get an invoice with every entry on it",
    description="The invoice, its balance (sum of its entries in its currency), every ledger entry that "
    "touches it (the invoice itself, payments, terms discounts, deductions claimed against it, reversals) and "
    "its lines from invoice line files.",
    operation_id="get_invoice",
    responses=problems(403, 404),
)
async def get_invoice(
    invoice_number: Annotated[PlainText, Path(max_length=64)], caller: LedgerRead, session: Session
) -> InvoiceDetail:
    row, touching, balance, lines = await service.get_invoice(session, caller, invoice_number)
    return InvoiceDetail(
        **InvoiceOut.model_validate(row).model_dump(),
        balance=balance,
        entries=[LedgerEntryOut.model_validate(e) for e in touching],
        lines=[
            InvoiceLineOut.model_validate(
                {
                    **{f: getattr(line, f) for f in InvoiceLineOut.model_fields},
                    "currency": line.currency or row.currency,
                }
            )
            for line in lines
        ],
    )


@payments_router.get(
    "/{payment_number}",
    summary="Get a payment with its lines",
    operation_id="get_payment",
    responses=problems(403, 404),
)
async def get_payment(
    payment_number: Annotated[PlainText, Path(max_length=64)], caller: LedgerRead, session: Session
) -> PaymentDetail:
    row, lines = await service.get_payment(session, caller, payment_number)
    return PaymentDetail(
        **PaymentOut.model_validate(row).model_dump(), lines=[PaymentLineOut.model_validate(x) for x in lines]
    )


ROUTERS = [imports_router, mappings_router, ledger_router, invoices_router, payments_router]
