"""CSV in and out: bulk drafts from a file (all rows or none), and a store's effective price list.

Import format (UTF-8, with or without BOM; comma-separated; a header row naming the columns, any order,
case-insensitive):

| column | required | meaning |
|---|---|---|
| `asin` or `vendor_sku` | one of them | the item (both may be given; they must name the same item) |
| `store_code` | either this … | price for one store |
| `region` [+ `marketplace`] | … or this | price for a marketplace (NA/EU/FE + US, DE, …) or a whole region |
| `currency` | yes | ISO 4217; must be the scope's currency |
| `cost_price` | yes | plain decimal, dot separator, ≤ 4 decimals: `1234.5`. `1,234.5` and `1234,5` are refused |
| `list_price` | no | same format |
| `min_order_quantity` | no | positive integer |
| `effective_from` | yes | RFC 3339 with offset (`2026-01-31T00:00:00Z`) or a date (`2026-01-31` = 00:00 UTC) |
| `effective_to` | no | same; exclusive, after `effective_from` |
| `reason` | no | free text |

Unknown columns are refused (a renamed column would otherwise be silently ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.catalog.repository import items
from acorn_api.core.errors import Unprocessable, field_error
from acorn_api.core.money import CURRENCY_CODES
from acorn_api.core.regions import MARKETPLACE_REGION, Marketplace, Region
from acorn_api.core.text_input import control_character_problem
from acorn_api.quotes import events
from acorn_api.quotes.models import QuoteStatus, ScopeType
from acorn_api.quotes.parsing import parse_instant, parse_price
from acorn_api.quotes.repository import quotes, stores_by_codes
from acorn_api.quotes.schemas import ImportResult, ImportRowError
from acorn_api.quotes.service import currency_problem
from acorn_api.stores.models import Store

KNOWN_COLUMNS = (
    "asin",
    "vendor_sku",
    "store_code",
    "region",
    "marketplace",
    "currency",
    "cost_price",
    "list_price",
    "min_order_quantity",
    "effective_from",
    "effective_to",
    "reason",
)
REQUIRED_COLUMNS = ("currency", "cost_price", "effective_from")
MAX_ROWS = 10_000
MAX_IMPORT_BYTES = 10 * 1024 * 1024
EXPORT_QUEUE_CHUNKS = 16
EXPORT_COLUMNS = (
    "asin",
    "vendor_sku",
    "item_id",
    "cost_price",
    "currency",
    "list_price",
    "min_order_quantity",
    "source",
    "quote_id",
    "effective_from",
    "effective_to",
)


class FileProblem(Unprocessable):
    code = "csv_invalid"


def file_error(detail: str, code: str = "csv_invalid") -> FileProblem:
    return FileProblem(detail, code=code, errors=[field_error(["body", "file"], detail, code)])


def decode(raw: bytes) -> str:
    """UTF-8 with or without a BOM; anything else is refused with where it went wrong."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise file_error("The file is UTF-16; save it as UTF-8 (CSV UTF-8) and upload again.", "csv_encoding")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise file_error(
            f"The file is not UTF-8: byte 0x{raw[exc.start]:02x} on line {line} cannot be decoded "
            "(Windows-1252 or Latin-1?). Save it as UTF-8 (with or without BOM) and upload again.",
            "csv_encoding",
        ) from exc


@dataclass
class Row:
    number: int
    values: dict[str, str]
    parsed: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (column, reason) found while reading


def read_rows(text: str) -> list[Row]:
    """Split into rows keyed by column, checking the header; file-level problems raise at once."""
    if not text.strip():
        raise file_error("The file is empty; it needs a header row and at least one data row.", "csv_empty")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = [h.strip().lower() for h in next(reader)]
        for name in header:
            if problem := control_character_problem(name, multi_line=False):
                raise file_error(f"The header {problem}.", "csv_columns")
        if len(set(header)) != len(header):
            raise file_error(
                "The header repeats a column: " + ", ".join(sorted({h for h in header if header.count(h) > 1}))
            )
        unknown = [h for h in header if h not in KNOWN_COLUMNS]
        if unknown:
            raise file_error(
                f"Unknown column(s): {', '.join(unknown)}. Known columns: {', '.join(KNOWN_COLUMNS)}.", "csv_columns"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if "asin" not in header and "vendor_sku" not in header:
            missing.append("asin or vendor_sku")
        if "store_code" not in header and "region" not in header:
            missing.append("store_code or region")
        if missing:
            raise file_error(f"Missing column(s): {', '.join(missing)}.", "csv_columns")
        rows: list[Row] = []
        for fields in reader:
            number = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(rows) >= MAX_ROWS:
                raise file_error(f"The file has more than {MAX_ROWS} rows; split it.", "csv_too_many_rows")
            if len(fields) != len(header):
                rows.append(Row(number, {"__shape__": f"has {len(fields)} fields; the header has {len(header)}"}))
                continue
            values = {h: f.strip() for h, f in zip(header, fields, strict=True)}
            problems = [(h, problem) for h, f in values.items() if (problem := control_character_problem(f))]
            rows.append(Row(number, values, problems=problems))
    except csv.Error as exc:
        raise file_error(f"The file is not valid CSV: {exc}.") from exc
    if not rows:
        raise file_error("The file has a header but no data rows.", "csv_empty")
    return rows


def parse_row(row: Row, errors: list[ImportRowError]) -> None:
    """Check each field on its own; puts typed values in ``row.parsed`` and problems in ``errors``."""
    v, p = row.values, row.parsed

    def bad(column: str | None, reason: str) -> None:
        errors.append(ImportRowError(row=row.number, column=column, reason=reason))

    if "__shape__" in v:
        bad(None, v["__shape__"])
        return
    if row.problems:
        for column, reason in row.problems:
            bad(column, reason)
        return
    asin, sku = v.get("asin", "").upper(), v.get("vendor_sku", "")
    if not asin and not sku:
        bad("asin", "give asin or vendor_sku")
    p["asin"], p["vendor_sku"] = asin or None, sku or None
    store_code, region, marketplace = (
        v.get("store_code", ""),
        v.get("region", "").upper(),
        v.get("marketplace", "").upper(),
    )
    if store_code and (region or marketplace):
        bad("store_code", "give either store_code, or region (with an optional marketplace), not both")
    elif not store_code and not region:
        bad("region" if marketplace else "store_code", "give store_code, or region with an optional marketplace")
    p["store_code"] = store_code or None
    p["region"] = p["marketplace"] = None
    if region:
        if region not in Region.__members__:
            bad("region", f"{region!r} is not a region (NA, EU, FE)")
        else:
            p["region"] = Region(region)
    if marketplace:
        if marketplace not in Marketplace.__members__:
            bad("marketplace", f"{marketplace!r} is not a marketplace")
        elif p["region"] is not None and MARKETPLACE_REGION[Marketplace(marketplace)] != p["region"]:
            bad("marketplace", f"marketplace {marketplace} is not in region {region}")
        else:
            p["marketplace"] = Marketplace(marketplace)
    currency = v.get("currency", "").upper()
    if currency not in CURRENCY_CODES:
        bad("currency", f"{currency!r} is not an ISO 4217 currency code" if currency else "is required")
    p["currency"] = currency
    for column, required in (("cost_price", True), ("list_price", False)):
        raw = v.get(column, "")
        if not raw and not required:
            p[column] = None
            continue
        try:
            p[column] = parse_price(raw)
        except ValueError as exc:
            bad(column, str(exc))
    moq = v.get("min_order_quantity", "")
    p["min_order_quantity"] = None
    if moq:
        if not moq.isascii() or not moq.isdigit() or not 1 <= int(moq) <= 10_000_000:
            bad("min_order_quantity", f"{moq!r} is not a whole number from 1 to 10000000")
        else:
            p["min_order_quantity"] = int(moq)
    for column, required in (("effective_from", True), ("effective_to", False)):
        raw = v.get(column, "")
        p[column] = None
        if not raw:
            if required:
                bad(column, "is required")
            continue
        try:
            p[column] = parse_instant(raw)
        except ValueError as exc:
            bad(column, str(exc))
    start, end = p.get("effective_from"), p.get("effective_to")
    if isinstance(start, datetime) and isinstance(end, datetime) and end <= start:
        bad("effective_to", "must be after effective_from")
    reason = v.get("reason", "")
    if len(reason) > 1000:
        bad("reason", "is longer than 1000 characters")
    p["reason"] = reason or None


def parse_file(raw: bytes) -> tuple[list[Row], list[ImportRowError]]:
    """Decode, split and check every row: pure CPU work, run in a thread by :func:`import_drafts`."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise file_error(f"The file is larger than {MAX_IMPORT_BYTES} bytes; split it.", "csv_too_large")
    rows = read_rows(decode(raw))
    errors: list[ImportRowError] = []
    for row in rows:
        parse_row(row, errors)
    return rows, errors


async def import_drafts(session: AsyncSession, caller: Caller, raw: bytes) -> ImportResult:
    """Create one draft per row, or none at all: any bad row answers 422 listing every bad row.

    Parsing (up to ``MAX_IMPORT_BYTES``) runs in a worker thread so a 10 MB file does not stall the event
    loop; the database work is set-based: one lookup of the items, one of the stores, and the drafts
    inserted in batches with ``RETURNING`` (no query per row)."""
    rows, errors = await asyncio.to_thread(parse_file, raw)
    parsed = [r.parsed for r in rows if r.parsed]
    found_items = await items.by_keys(
        session,
        caller.account_id,
        asins=[p["asin"] for p in parsed if p.get("asin")],
        vendor_skus=[p["vendor_sku"] for p in parsed if p.get("vendor_sku")],
    )
    by_asin = {i.asin: i for i in found_items}
    by_sku = {i.vendor_sku: i for i in found_items}
    by_code = await stores_by_codes(
        session, caller.account_id, [p["store_code"] for p in parsed if p.get("store_code")]
    )
    new_rows: list[dict[str, Any]] = []
    import_id = uuid.uuid4()
    bad_rows = {e.row for e in errors}
    for row in rows:
        if not row.parsed or row.number in bad_rows:
            continue
        values = _resolve_row(row, by_asin, by_sku, by_code, errors)
        if values is not None:
            new_rows.append({**values, "import_id": import_id, "created_by": caller.credential_id})
    if errors:
        errors.sort(key=lambda e: (e.row, e.column or ""))
        raise Unprocessable(
            f"{len({e.row for e in errors})} row(s) of the file are invalid; nothing was imported.",
            code="csv_rows_invalid",
            errors=[field_error(["body", "file", e.row, e.column or "row"], e.reason) for e in errors[:1000]],
            row_errors=[e.model_dump() for e in errors[:1000]],
        )
    new_quotes = await quotes.add_many(session, caller.account_id, new_rows)
    for quote in new_quotes:
        events.record(session, caller, quote, "created", from_status=None, details={"import_id": import_id})
    audit.record(session, caller, "quote.imported", "quote_import", import_id, after={"rows": len(new_quotes)})
    return ImportResult(
        import_id=import_id, rows=len(rows), created=len(new_quotes), quote_ids=[q.id for q in new_quotes]
    )


def _resolve_row(
    row: Row,
    by_asin: dict[str, Any],
    by_sku: dict[str, Any],
    by_code: dict[str, Store],
    errors: list[ImportRowError],
) -> dict[str, Any] | None:
    """The column values of the row's draft, or None (with its problems added to ``errors``)."""
    p = row.parsed
    before = len(errors)

    def bad(column: str, reason: str) -> None:
        errors.append(ImportRowError(row=row.number, column=column, reason=reason))

    item = None
    if p["asin"]:
        item = by_asin.get(p["asin"])
        if item is None:
            bad("asin", f"no item with ASIN {p['asin']} in this account")
    if p["vendor_sku"]:
        sku_item = by_sku.get(p["vendor_sku"])
        if sku_item is None:
            bad("vendor_sku", f"no item with vendor SKU {p['vendor_sku']} in this account")
        elif item is not None and sku_item.id != item.id:
            bad("vendor_sku", "names a different item than asin")
        item = item or sku_item
    if item is not None and item.status != "active":
        bad("asin" if p["asin"] else "vendor_sku", "the item is discontinued")
    store = None
    if p["store_code"]:
        store = by_code.get(p["store_code"])
        if store is None:
            bad("store_code", f"no store with code {p['store_code']!r} in this account")
        elif store.status != "active":
            bad("store_code", f"store {store.code} is archived")
    scope_type = (
        ScopeType.store if p["store_code"] else (ScopeType.marketplace if p["marketplace"] else ScopeType.region)
    )
    if (store is not None or scope_type is not ScopeType.store) and p["currency"]:
        problem = currency_problem(
            scope_type, p["currency"], store=store, region=p["region"], marketplace=p["marketplace"]
        )
        if problem:
            bad("currency", problem)
    if len(errors) > before or item is None:
        return None
    return {
        "item_id": item.id,
        "scope_type": scope_type.value,
        "store_id": store.id if store else None,
        "region": p["region"].value if p["region"] else None,
        "marketplace": p["marketplace"].value if p["marketplace"] else None,
        "currency": p["currency"],
        "cost_price": p["cost_price"],
        "list_price": p["list_price"],
        "min_order_quantity": p["min_order_quantity"],
        "effective_from": p["effective_from"],
        "effective_to": p["effective_to"],
        "reason": p["reason"],
        "status": QuoteStatus.draft.value,
    }


async def export_price_list(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID, store: Store, at: datetime
) -> AsyncIterator[bytes]:
    """The store's effective price list as CSV chunks from PostgreSQL's COPY, through a bounded queue.

    The COPY runs in its own task and session; it pauses whenever the client reads slower than the database
    writes (the queue is full), so the server holds at most ``EXPORT_QUEUE_CHUNKS`` chunks whatever the size.
    """
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=EXPORT_QUEUE_CHUNKS)

    async def sink(chunk: bytes | bytearray | memoryview) -> None:
        await queue.put(bytes(chunk))  # asyncpg may reuse its buffer

    async def produce() -> None:
        try:
            async with sessionmaker() as session:
                await quotes.copy_store_price_list(session, account_id, store, at, sink)
        except Exception as exc:  # handed to the consumer, which re-raises it in the response task
            await queue.put(exc)
            return
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (chunk := await queue.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
