"""Every query of the ledger domain, scoped to an account: imports, mappings, entries, invoices, payments.

The bulk load is here too: ``Stage`` is one import's staging area (temporary tables on the job's
connection), filled by ``COPY`` and moved into the ledger by set-based ``INSERT … SELECT`` statements that
keep each natural key once and anti-join the ledger, under the account's ledger-writer lock (no ``ON
CONFLICT``), all in the job's one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.repository import AccountScopedRepository
from acorn_api.ledger.models import (
    Import,
    ImportMapping,
    ImportStatus,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Payment,
    PaymentLine,
)
from acorn_api.ledger.reports import STAGE_COLUMNS, Record


class ImportRepository(AccountScopedRepository[Import]):
    model = Import
    not_found_message = "No such import."

    async def by_hash(
        self, session: AsyncSession, account_id: uuid.UUID, report_type: str, sha256: str
    ) -> Import | None:
        row: Import | None = await session.scalar(
            self.select(account_id).where(Import.report_type == report_type, Import.sha256 == sha256)
        )
        return row

    async def stale_running(
        self, session: AsyncSession, older_than_seconds: int, limit: int = 100
    ) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
        """Imports queued or running for a while that no loader holds: their job was lost or its worker died.

        A loader keeps its import row locked for its whole transaction, so ``SKIP LOCKED`` passes over
        every import that is really being loaded. (Cross-account by design: a maintenance job.)
        """
        rows = await session.execute(
            select(Import.account_id, Import.id)
            .where(
                Import.status.in_([ImportStatus.queued, ImportStatus.running]),
                Import.updated_at < _seconds_ago(older_than_seconds),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [(r[0], r[1]) for r in rows.all()]


def _seconds_ago(seconds: int) -> Any:
    from sqlalchemy import func, text

    return func.now() - text(f"interval '{int(seconds)} seconds'")


class ImportMappingRepository(AccountScopedRepository[ImportMapping]):
    model = ImportMapping
    not_found_message = "No such import mapping."

    async def default_for(self, session: AsyncSession, account_id: uuid.UUID, report_type: str) -> ImportMapping | None:
        row: ImportMapping | None = await session.scalar(
            self.select(account_id)
            .where(ImportMapping.report_type == report_type, ImportMapping.is_default.is_(True))
            .order_by(ImportMapping.created_at.desc())
            .limit(1)
        )
        return row

    async def name_taken(
        self, session: AsyncSession, account_id: uuid.UUID, report_type: str, name: str, except_id: uuid.UUID | None
    ) -> bool:
        stmt = self.select(account_id).where(ImportMapping.report_type == report_type, ImportMapping.name == name)
        if except_id is not None:
            stmt = stmt.where(ImportMapping.id != except_id)
        return await session.scalar(stmt.limit(1)) is not None

    async def delete(self, session: AsyncSession, account_id: uuid.UUID, mapping_id: uuid.UUID) -> None:
        # The imports that used it let go first: the foreign key's own ON DELETE SET NULL would null
        # ``account_id`` too (it is part of the composite key), which NOT NULL refuses.
        await session.execute(
            update(Import)
            .where(Import.account_id == account_id, Import.mapping_id == mapping_id)
            .values(mapping_id=None)
        )
        await session.execute(
            delete(ImportMapping).where(ImportMapping.account_id == account_id, ImportMapping.id == mapping_id)
        )


@dataclass(frozen=True)
class EntryFilters:
    entry_type: str | None = None
    store_id: uuid.UUID | None = None
    vendor_code: str | None = None
    invoice_number: str | None = None
    payment_number: str | None = None
    po_number: str | None = None
    source_import_id: uuid.UUID | None = None
    occurred_from: date | None = None
    occurred_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None


class LedgerEntryRepository(AccountScopedRepository[LedgerEntry]):
    model = LedgerEntry
    not_found_message = "No such ledger entry."

    def filtered(self, account_id: uuid.UUID, f: EntryFilters) -> Select[LedgerEntry]:
        stmt = self.select_matching(
            account_id,
            entry_type=f.entry_type,
            store_id=f.store_id,
            vendor_code=f.vendor_code,
            invoice_number=f.invoice_number,
            payment_number=f.payment_number,
            po_number=f.po_number,
            source_import_id=f.source_import_id,
        )
        if f.occurred_from is not None:
            stmt = stmt.where(LedgerEntry.occurred_on >= f.occurred_from)
        if f.occurred_to is not None:
            stmt = stmt.where(LedgerEntry.occurred_on <= f.occurred_to)
        if f.amount_min is not None:
            stmt = stmt.where(LedgerEntry.amount >= f.amount_min)
        if f.amount_max is not None:
            stmt = stmt.where(LedgerEntry.amount <= f.amount_max)
        return stmt

    async def touching_invoice(
        self, session: AsyncSession, account_id: uuid.UUID, invoice_number: str
    ) -> Sequence[LedgerEntry]:
        rows = await session.scalars(
            self.select(account_id)
            .where(LedgerEntry.invoice_number == invoice_number)
            .order_by(LedgerEntry.occurred_on, LedgerEntry.created_at, LedgerEntry.id)
        )
        return rows.all()

    async def by_natural_key(self, session: AsyncSession, account_id: uuid.UUID, key: str) -> LedgerEntry | None:
        row: LedgerEntry | None = await session.scalar(self.select(account_id).where(LedgerEntry.natural_key == key))
        return row


class InvoiceRepository(AccountScopedRepository[Invoice]):
    model = Invoice
    not_found_message = "No such invoice."

    async def by_number(self, session: AsyncSession, account_id: uuid.UUID, number: str) -> Invoice | None:
        row: Invoice | None = await session.scalar(self.select(account_id).where(Invoice.invoice_number == number))
        return row

    async def lines(self, session: AsyncSession, account_id: uuid.UUID, number: str) -> Sequence[InvoiceLine]:
        rows = await session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.account_id == account_id, InvoiceLine.invoice_number == number)
            .order_by(InvoiceLine.created_at, InvoiceLine.source_row, InvoiceLine.id)
        )
        return rows.all()


class PaymentRepository(AccountScopedRepository[Payment]):
    model = Payment
    not_found_message = "No such payment."

    async def by_number(self, session: AsyncSession, account_id: uuid.UUID, number: str) -> Payment | None:
        row: Payment | None = await session.scalar(self.select(account_id).where(Payment.payment_number == number))
        return row

    async def lines(self, session: AsyncSession, account_id: uuid.UUID, number: str) -> Sequence[PaymentLine]:
        rows = await session.scalars(
            select(PaymentLine)
            .where(and_(PaymentLine.account_id == account_id, PaymentLine.payment_number == number))
            .order_by(PaymentLine.source_row, PaymentLine.invoice_number)
        )
        return rows.all()


imports = ImportRepository()
mappings = ImportMappingRepository()
entries = LedgerEntryRepository()
invoices = InvoiceRepository()
payments = PaymentRepository()


# --- the bulk load -----------------------------------------------------------------------------------

_STAGE_TYPES = {
    "row": "integer",
    "amount": "numeric",
    "quantity": "integer",
    "amount2": "numeric",
    "rate": "numeric",
    "withholding": "numeric",
    "terms_discount": "numeric",
    "amount_paid": "numeric",
    "remaining": "numeric",
}


LOCK_LEDGER_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('acorn.ledger:' || $1, 0))"


async def lock_ledger(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Take the account's ledger-writer lock until the transaction ends (see ``Stage.load``)."""
    conn = await driver_connection(session)
    await conn.execute(LOCK_LEDGER_SQL, str(account_id))


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session (same transaction), for ``COPY``."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


class Stage:
    """One import's temporary tables on the job's connection; dropped at the end of the load."""

    def __init__(self, conn: Any, import_id: uuid.UUID) -> None:
        self.conn = conn
        self.timings: dict[str, float] = {}
        suffix = import_id.hex
        self.records = f"import_stage_{suffix}"
        self.dates = f"import_dates_{suffix}"
        self.loaded = f"import_loaded_{suffix}"
        self.ids = f"import_ids_{suffix}"

    async def create(self) -> None:
        columns = ", ".join(f"{c} {_STAGE_TYPES.get(c, 'text')}" for c in STAGE_COLUMNS)
        # For this transaction only: the staging statements look expensive to the planner (millions of rows,
        # subplans), so JIT would compile them, ~1–1.5 s per statement for nothing (they are I/O and index
        # bound); and the staging sorts (DISTINCT ON) fit in memory instead of spilling to disk.
        await self.conn.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
        await self.conn.execute(
            f"DROP TABLE IF EXISTS {self.records}, {self.dates}, {self.loaded}, {self.ids};"
            f"CREATE TEMP TABLE {self.records} ({columns}) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.dates} (raw text PRIMARY KEY, d date NOT NULL) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.loaded} (row integer NOT NULL) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.ids} (row integer NOT NULL, natural_key text NOT NULL, id uuid NOT NULL) "
            "ON COMMIT DROP;"
        )

    async def drop(self) -> None:
        await self.conn.execute(f"DROP TABLE IF EXISTS {self.records}, {self.dates}, {self.loaded}, {self.ids}")

    async def copy(self, batch: list[Record]) -> None:
        await self.conn.copy_records_to_table(self.records, records=batch, columns=STAGE_COLUMNS)

    async def copy_dates(self, values: list[tuple[str, date]]) -> None:
        if values:
            await self.conn.copy_records_to_table(self.dates, records=values, columns=("raw", "d"))

    async def unknown_store_codes(self, account_id: uuid.UUID) -> list[tuple[int, str]]:
        rows = await self.conn.fetch(
            f"SELECT DISTINCT s.row, s.store_code FROM {self.records} s "
            "WHERE s.store_code IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM stores st WHERE st.account_id = $1 AND st.code = s.store_code) ORDER BY s.row",
            account_id,
        )
        return [(r["row"], r["store_code"]) for r in rows]

    async def drop_rows(self, rows: list[int]) -> None:
        await self.conn.execute(f"DELETE FROM {self.records} WHERE row = ANY($1::int[])", rows)

    async def _run(self, name: str, sql: str, *args: Any, when: bool = True) -> None:
        if not when:
            return  # nothing of it is new (see ``_any_new``)
        started = time.perf_counter()
        await self.conn.execute(sql, *args)
        self.timings[name] = round(time.perf_counter() - started, 3)

    async def _any_new(
        self, name: str, account_id: uuid.UUID, *, where: str, table: str, column: str, staged: str
    ) -> bool:
        """Whether any staged record matching ``where`` is missing from ``table`` (``column`` = ``staged``).

        The search stops at the first new record, so it costs nothing on a new file; on a re-import of
        known rows it is one index probe per record, and the insert with its joins is skipped altogether.
        """
        started = time.perf_counter()
        found: bool = await self.conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {self.records} r WHERE {where} AND NOT EXISTS "
            f"(SELECT 1 FROM {table} t WHERE t.account_id = $1 AND t.{column} = {staged}))",
            account_id,
        )
        self.timings[f"{name}_check"] = round(time.perf_counter() - started, 3)
        return found

    async def load(
        self,
        account_id: uuid.UUID,
        import_id: uuid.UUID,
        store_id: uuid.UUID | None,
        fallback_date: date,
        invoice_source: str,
    ) -> int:
        """Move the staged records into the ledger tables; returns how many rows added something."""
        s, d, loaded, ids = self.records, self.dates, self.loaded, self.ids
        # Imports of one account are serialised from here to the commit, and so is every other writer of
        # the ledger tables (``lock_ledger``): between the anti-joins below and their inserts no other
        # transaction can add the same natural key, so the inserts need no ``ON CONFLICT`` (speculative
        # insertion, row by row). The unique indexes stay as the last guard: a violation fails the whole
        # import (one transaction, nothing half-written).
        started = time.perf_counter()
        await self.conn.execute(LOCK_LEDGER_SQL, str(account_id))
        self.timings["lock"] = round(time.perf_counter() - started, 3)
        # temporary tables have no statistics until analysed: without them the planner nests loops over
        # millions of staged rows instead of hashing them
        await self._run("analyze", f"ANALYZE {s}; ANALYZE {d}")
        stores = (
            "vc AS (SELECT DISTINCT ON (u.vcode) u.vcode AS code, st.id "
            "FROM stores st, unnest(st.vendor_codes) AS u(vcode) "
            "WHERE st.account_id = $1 ORDER BY u.vcode, st.created_at), "
            "sc AS (SELECT code, id FROM stores WHERE account_id = $1)"
        )
        new_entries = await self._any_new(
            "entries",
            account_id,
            where="r.kind = 'entry'",
            table="ledger_entries",
            column="natural_key",
            staged="r.natural_key",
        )
        await self._run(
            "entries",
            f"""
            WITH {stores},
            pd AS (SELECT DISTINCT ON (payment_number) payment_number, occurred_raw
                   FROM {s} WHERE kind = 'payment' ORDER BY payment_number, row),
            ins AS (
              INSERT INTO ledger_entries (id, account_id, entry_type, amount, currency, occurred_on, due_on,
                invoice_number, payment_number, po_number, asin, vendor_code, store_id, reference, description,
                quantity, source_import_id, source_row, raw, natural_key)
              SELECT acorn_uuid7(), $1, r.entry_type, r.amount, r.currency, COALESCE(od.d, $4::date), dd.d,
                r.invoice_number, r.payment_number, r.po_number, r.asin, r.vendor_code,
                COALESCE($3::uuid, sc.id, vc.id), r.reference, r.description, r.quantity, $2, r.row,
                COALESCE(r.raw::jsonb, '{{}}'::jsonb), r.natural_key
              -- each natural key once (the file's first row of it), and only the keys the ledger lacks
              FROM (SELECT DISTINCT ON (natural_key) * FROM {s} WHERE kind = 'entry'
                    ORDER BY natural_key, row) r
              LEFT JOIN pd ON r.entry_type = 'payment' AND pd.payment_number = r.payment_number
              LEFT JOIN {d} od ON od.raw = COALESCE(pd.occurred_raw, r.occurred_raw)
              LEFT JOIN {d} dd ON dd.raw = r.due_raw
              LEFT JOIN vc ON vc.code = r.vendor_code
              LEFT JOIN sc ON sc.code = r.store_code
              WHERE NOT EXISTS (SELECT 1 FROM ledger_entries le WHERE le.account_id = $1
                                AND le.natural_key = r.natural_key)
                -- an invoice Amazon accepted through the connector is in the ledger already (submission:<id>)
                AND NOT (r.entry_type = 'invoice' AND EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = $1
                         AND i.invoice_number = r.invoice_number AND i.source = 'submission'))
              RETURNING source_row, natural_key, id)
            INSERT INTO {ids} SELECT source_row, natural_key, id FROM ins
            """,
            account_id,
            import_id,
            store_id,
            fallback_date,
            when=new_entries,
        )
        await self._run("analyze_ids", f"ANALYZE {ids}", when=new_entries)
        # the entry a payment line or invoice points at: the one just added (a hash join on the small id
        # table), else the one already in the ledger (an index probe, only for those)
        entry_id = (
            "COALESCE(ids.id, (SELECT le.id FROM ledger_entries le WHERE le.account_id = $1 "
            "AND le.natural_key = {key}))"
        )
        await self._run(
            "payments",
            f"""
            WITH ins AS (
              INSERT INTO payments (id, account_id, payment_number, payment_date, amount, currency, payment_amount,
                payment_currency, exchange_rate, payment_type, payment_status, source_import_id)
              SELECT gen_random_uuid(), $1, p.payment_number, pdt.d, p.amount, p.currency, p.amount2, p.currency2,
                p.rate, p.payment_type, p.status, $2
              FROM (SELECT DISTINCT ON (payment_number) * FROM {s} WHERE kind = 'payment'
                    ORDER BY payment_number, row) p
              LEFT JOIN {d} pdt ON pdt.raw = p.occurred_raw
              WHERE NOT EXISTS (SELECT 1 FROM payments k WHERE k.account_id = $1
                                AND k.payment_number = p.payment_number)
              RETURNING payment_number)
            INSERT INTO {loaded} SELECT r.row FROM ins JOIN {s} r ON r.kind = 'payment'
              AND r.payment_number = ins.payment_number
            """,
            account_id,
            import_id,
        )
        # payments known only from their lines (a remittance CSV without the payments section)
        await self._run(
            "payments_from_lines",
            f"""
            INSERT INTO payments (id, account_id, payment_number, currency, source_import_id)
            SELECT gen_random_uuid(), $1, l.payment_number, min(l.currency), $2
            FROM {s} l WHERE l.kind = 'entry' AND l.line_key IS NOT NULL AND l.payment_number IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM payments k WHERE k.account_id = $1
                              AND k.payment_number = l.payment_number)
            GROUP BY l.payment_number
            """,
            account_id,
            import_id,
        )
        new_lines = await self._any_new(
            "payment_lines",
            account_id,
            where="r.kind = 'entry' AND r.line_key IS NOT NULL",
            table="payment_lines",
            column="natural_key",
            staged="r.line_key",
        )
        await self._run(
            "payment_lines",
            f"""
            WITH ins AS (
              INSERT INTO payment_lines (id, account_id, payment_number, invoice_number, invoice_date, description,
                entry_type, invoice_amount, currency, withholding_amount, terms_discount, amount_paid,
                remaining_amount, ledger_entry_id, source_import_id, source_row, natural_key)
              SELECT gen_random_uuid(), $1, r.payment_number, COALESCE(r.reference, r.invoice_number), od.d,
                r.description,
                -- a plain invoice's line rides on its payment entry; the line is of the invoice
                CASE WHEN r.entry_type = 'payment' THEN 'invoice' ELSE r.entry_type END,
                r.amount2, r.currency, r.withholding, r.terms_discount, r.amount_paid, r.remaining,
                {entry_id.format(key="r.natural_key")}, $2, r.row, r.line_key
              FROM (SELECT DISTINCT ON (line_key) * FROM {s} WHERE kind = 'entry' AND line_key IS NOT NULL
                    ORDER BY line_key, row) r
              LEFT JOIN {d} od ON od.raw = r.occurred_raw
              LEFT JOIN {ids} ids ON ids.natural_key = r.natural_key
              WHERE NOT EXISTS (SELECT 1 FROM payment_lines k WHERE k.account_id = $1
                                AND k.natural_key = r.line_key)
              RETURNING source_row)
            INSERT INTO {loaded} SELECT source_row FROM ins
            """,
            account_id,
            import_id,
            when=new_lines,
        )
        new_invoices = await self._any_new(
            "invoices",
            account_id,
            where="r.kind = 'entry' AND r.entry_type = 'invoice'",
            table="invoices",
            column="invoice_number",
            staged="r.invoice_number",
        )
        await self._run(
            "invoices",
            f"""
            WITH {stores},
            ins AS (
              INSERT INTO invoices (id, account_id, invoice_number, invoice_date, due_on, po_number, vendor_code,
                store_id, amount, currency, source, source_import_id, ledger_entry_id)
              SELECT gen_random_uuid(), $1, r.invoice_number, od.d, dd.d, r.po_number, r.vendor_code,
                COALESCE($3::uuid, sc.id, vc.id), r.amount, r.currency, $4, $2,
                {entry_id.format(key="r.natural_key")}
              FROM (SELECT DISTINCT ON (invoice_number) * FROM {s} WHERE kind = 'entry' AND entry_type = 'invoice'
                    ORDER BY invoice_number, row) r
              LEFT JOIN {d} od ON od.raw = r.occurred_raw
              LEFT JOIN {d} dd ON dd.raw = r.due_raw
              LEFT JOIN vc ON vc.code = r.vendor_code
              LEFT JOIN sc ON sc.code = r.store_code
              LEFT JOIN {ids} ids ON ids.natural_key = r.natural_key
              WHERE NOT EXISTS (SELECT 1 FROM invoices k WHERE k.account_id = $1
                                AND k.invoice_number = r.invoice_number)
              RETURNING invoice_number)
            INSERT INTO {loaded} SELECT r.row FROM ins JOIN {s} r ON r.kind = 'entry' AND r.entry_type = 'invoice'
              AND r.invoice_number = ins.invoice_number
            """,
            account_id,
            import_id,
            store_id,
            invoice_source,
            when=new_invoices,
        )
        new_invoice_lines = await self._any_new(
            "invoice_lines",
            account_id,
            where="r.kind = 'invoice_line'",
            table="invoice_lines",
            column="natural_key",
            staged="r.natural_key",
        )
        await self._run(
            "invoice_lines",
            f"""
            WITH ins AS (
              INSERT INTO invoice_lines (id, account_id, invoice_number, asin, quantity, unit_cost, amount, currency,
                source_import_id, source_row, raw, natural_key)
              SELECT gen_random_uuid(), $1, r.invoice_number, r.asin, r.quantity, r.amount, r.quantity * r.amount,
                r.currency, $2, r.row, COALESCE(r.raw::jsonb, '{{}}'::jsonb), r.natural_key
              FROM (SELECT DISTINCT ON (natural_key) * FROM {s} WHERE kind = 'invoice_line'
                    ORDER BY natural_key, row) r
              WHERE NOT EXISTS (SELECT 1 FROM invoice_lines k WHERE k.account_id = $1
                                AND k.natural_key = r.natural_key)
              RETURNING source_row)
            INSERT INTO {loaded} SELECT source_row FROM ins
            """,
            account_id,
            import_id,
            when=new_invoice_lines,
        )
        count: int = await self.conn.fetchval(
            f"SELECT count(*) FROM (SELECT row FROM {loaded} UNION SELECT row FROM {ids}) AS added"
        )
        return count
