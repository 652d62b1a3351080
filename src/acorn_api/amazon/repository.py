"""Every query of the vendor domain, scoped to an account.

The upserts take a page of rows as one JSON parameter (``jsonb_to_recordset``) and write them with
``INSERT ... ON CONFLICT DO UPDATE ... WHERE (row) IS DISTINCT FROM (new row)``: a row that did not
change is not touched (no new version, no ``updated_at`` bump), so a re-sync can count created, updated
and unchanged rows exactly.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Select, Update, bindparam, case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.amazon.models import (
    ACTIVE_SYNC_STATUSES,
    InvoiceSubmission,
    PurchaseOrder,
    PurchaseOrderItem,
    Shipment,
    SyncRun,
    VendorConnection,
)
from acorn_api.core.repository import AccountScopedRepository

_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z  # a timestamp without offset is UTC (SP-API's convention)


def _json(rows: Sequence[dict[str, Any]]) -> str:
    """A page of rows as the one JSON parameter of ``jsonb_to_recordset`` (datetimes RFC 3339, Decimals as text)."""
    return orjson.dumps(rows if isinstance(rows, list) else list(rows), default=str, option=_JSON_OPTIONS).decode()


# Statements every page of a sync runs, built once with bound parameters (building an ORM statement costs more
# CPU than the round trip it makes).
_CONNECTION_STATE = (
    select(VendorConnection.status)
    .where(
        VendorConnection.account_id == bindparam("account_id"),
        VendorConnection.id == bindparam("connection_id"),
        VendorConnection.deleted_at.is_(None),
    )
    .with_for_update(read=True)
)


@functools.cache
def _advance_statement(unknown: bool, skipped: bool) -> Update:
    """The UPDATE that adds one committed page to its run (one shape per combination of optional counters)."""

    def param(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    values: dict[str, Any] = {
        "fetched": SyncRun.fetched + param("add_fetched", SyncRun.fetched),
        "created": SyncRun.created + param("add_created", SyncRun.created),
        "updated": SyncRun.updated + param("add_updated", SyncRun.updated),
        "unchanged": SyncRun.unchanged + param("add_unchanged", SyncRun.unchanged),
        "pages": SyncRun.pages + 1,
        "watermark": param("new_watermark", SyncRun.watermark),
        "heartbeat_at": param("new_heartbeat_at", SyncRun.heartbeat_at),
        "api_calls": param("new_api_calls", SyncRun.api_calls),
        "throttled_calls": param("new_throttled_calls", SyncRun.throttled_calls),
        "retries": param("new_retries", SyncRun.retries),
        "failed_request_ids": param("new_failed_request_ids", SyncRun.failed_request_ids),
    }
    details: Any = SyncRun.details
    if unknown:
        details = details.op("||")(
            func.jsonb_build_object(
                "unknown",
                func.coalesce(SyncRun.details["unknown"].as_integer(), 0) + param("add_unknown", SyncRun.fetched),
            )
        )
    if skipped:
        # rows of vendor codes the connection does not list: fetched (Amazon has no multi-code filter), not stored
        key = "skipped_other_vendor_codes"
        details = details.op("||")(
            func.jsonb_build_object(
                key, func.coalesce(SyncRun.details[key].as_integer(), 0) + param("add_skipped", SyncRun.fetched)
            )
        )
    if unknown or skipped:
        values["details"] = details
    return (
        update(SyncRun)
        .where(
            SyncRun.account_id == bindparam("run_account_id"),
            SyncRun.id == bindparam("run_id"),
            SyncRun.worker_token == bindparam("run_token"),
            SyncRun.status == "running",
        )
        .values(**values)
        .returning(SyncRun)
        .execution_options(synchronize_session=False)
    )


class ConnectionRepository(AccountScopedRepository[VendorConnection]):
    model = VendorConnection
    not_found_message = "No such connection."

    def select(self, account_id: uuid.UUID) -> Select[VendorConnection]:
        return super().select(account_id).where(VendorConnection.deleted_at.is_(None))

    def filtered(self, account_id: uuid.UUID, *, status: str | None = None) -> Select[VendorConnection]:
        stmt = self.select(account_id)
        if status is not None:
            stmt = stmt.where(VendorConnection.status == status)
        return stmt

    async def name_taken(
        self, session: AsyncSession, account_id: uuid.UUID, name: str, *, except_id: uuid.UUID | None = None
    ) -> bool:
        stmt = self.select(account_id).where(VendorConnection.name == name)
        if except_id is not None:
            stmt = stmt.where(VendorConnection.id != except_id)
        return await session.scalar(stmt.limit(1)) is not None

    async def state_for_share(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID
    ) -> str | None:
        """The connection's status under a share lock (a delete waits for us), or ``None`` once it was deleted."""
        found: str | None = await session.scalar(
            _CONNECTION_STATE, {"account_id": account_id, "connection_id": connection_id}
        )
        return found

    async def due_for_schedule(self, session: AsyncSession, now: datetime, limit: int = 100) -> list[VendorConnection]:
        """System-wide (the scheduler serves every account): active connections whose next sync is due.

        Rows are locked and skipped by concurrent schedulers, so two workers never schedule one twice.
        """
        stmt = (
            select(VendorConnection)
            .where(
                VendorConnection.deleted_at.is_(None),
                VendorConnection.status == "active",
                VendorConnection.next_sync_at <= now,
            )
            .order_by(VendorConnection.next_sync_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.scalars(stmt)).all())

    # System updates (sync outcomes, schedule) go through plain UPDATEs that leave ``version`` alone: the
    # version guards users' edits against each other, not against the connector's bookkeeping.

    async def record_success(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID, now: datetime
    ) -> None:
        await session.execute(
            update(VendorConnection)
            .where(VendorConnection.account_id == account_id, VendorConnection.id == connection_id)
            .values(
                last_success_at=now,
                last_error=None,
                status=case((VendorConnection.status == "error", "active"), else_=VendorConnection.status),
            )
            .execution_options(synchronize_session=False)
        )

    async def record_failure(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID, message: str, *, flag: bool
    ) -> None:
        values: dict[str, Any] = {"last_error": message[:2000]}
        if flag:
            values["status"] = "error"
        await session.execute(
            update(VendorConnection)
            .where(VendorConnection.account_id == account_id, VendorConnection.id == connection_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def schedule_next(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID, at: datetime
    ) -> None:
        await session.execute(
            update(VendorConnection)
            .where(VendorConnection.account_id == account_id, VendorConnection.id == connection_id)
            .values(next_sync_at=at)
            .execution_options(synchronize_session=False)
        )

    async def rotating_by(self, session: AsyncSession, day: date) -> list[VendorConnection]:
        """System-wide: connections whose credentials are due for rotation on or before ``day``."""
        rows = await session.scalars(
            select(VendorConnection).where(
                VendorConnection.deleted_at.is_(None), VendorConnection.credentials_rotate_by <= day
            )
        )
        return list(rows.all())

    async def all_ids(self, session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """System-wide: (account_id, id) of every connection, for key rotation."""
        rows = await session.execute(
            select(VendorConnection.account_id, VendorConnection.id).where(VendorConnection.deleted_at.is_(None))
        )
        return [(a, i) for a, i in rows]


class SyncRunRepository(AccountScopedRepository[SyncRun]):
    model = SyncRun
    not_found_message = "No such sync run."

    async def details(self, session: AsyncSession, account_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
        """The run's free-form details (e.g. the reports it requested), or ``{}``."""
        found = await session.scalar(
            select(SyncRun.details).where(SyncRun.account_id == account_id, SyncRun.id == run_id)
        )
        return dict(found or {})

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        connection_id: uuid.UUID | None = None,
        kind: str | None = None,
        status: str | None = None,
    ) -> Select[SyncRun]:
        return self.select_matching(account_id, connection_id=connection_id, kind=kind, status=status)

    async def find_for_update(self, session: AsyncSession, account_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun | None:
        row: SyncRun | None = await session.scalar(
            self.select(account_id).where(SyncRun.id == run_id).with_for_update()
        )
        return row

    async def active(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID, kind: str
    ) -> SyncRun | None:
        stmt = self.select(account_id).where(
            SyncRun.connection_id == connection_id, SyncRun.kind == kind, SyncRun.status.in_(ACTIVE_SYNC_STATUSES)
        )
        row: SyncRun | None = await session.scalar(stmt)
        return row

    async def all_active(self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID) -> list[SyncRun]:
        """The connection's queued and running runs, locked (a page commit of a running one waits, then finds
        the run no longer its own)."""
        stmt = (
            self.select(account_id)
            .where(SyncRun.connection_id == connection_id, SyncRun.status.in_(ACTIVE_SYNC_STATUSES))
            .with_for_update()
        )
        return list((await session.scalars(stmt)).all())

    async def any_active(self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID) -> bool:
        stmt = self.select(account_id).where(
            SyncRun.connection_id == connection_id, SyncRun.status.in_(ACTIVE_SYNC_STATUSES)
        )
        return await session.scalar(stmt.limit(1)) is not None

    async def last_succeeded(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID, kind: str
    ) -> SyncRun | None:
        stmt = (
            self.select(account_id)
            .where(SyncRun.connection_id == connection_id, SyncRun.kind == kind, SyncRun.status == "succeeded")
            .order_by(SyncRun.range_to.desc())
            .limit(1)
        )
        row: SyncRun | None = await session.scalar(stmt)
        return row

    async def advance(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        run_id: uuid.UUID,
        token: str,
        *,
        fetched: int,
        created: int,
        updated: int,
        unchanged: int,
        unknown: int,
        watermark: dict[str, Any],
        skipped: int = 0,
        now: datetime,
        api_calls: int,
        throttled_calls: int,
        retries: int,
        failed_request_ids: list[str],
    ) -> SyncRun | None:
        """Add one committed page to the run, if this worker still owns it (else ``None``)."""
        params: dict[str, Any] = {
            "run_account_id": account_id,
            "run_id": run_id,
            "run_token": token,
            "add_fetched": fetched,
            "add_created": created,
            "add_updated": updated,
            "add_unchanged": unchanged,
            "new_watermark": watermark,
            "new_heartbeat_at": now,
            "new_api_calls": api_calls,
            "new_throttled_calls": throttled_calls,
            "new_retries": retries,
            "new_failed_request_ids": failed_request_ids,
        }
        if unknown:
            params["add_unknown"] = unknown
        if skipped:
            params["add_skipped"] = skipped
        row: SyncRun | None = await session.scalar(_advance_statement(bool(unknown), bool(skipped)), params)
        return row

    async def stale(self, session: AsyncSession, heartbeat_before: datetime, limit: int = 100) -> list[SyncRun]:
        """System-wide: runs marked running whose worker stopped beating (it died), locked for recovery."""
        stmt = (
            select(SyncRun)
            .where(SyncRun.status == "running", SyncRun.heartbeat_at < heartbeat_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.scalars(stmt)).all())

    async def queued_before(self, session: AsyncSession, touched_before: datetime, limit: int = 100) -> list[SyncRun]:
        """System-wide: runs queued and untouched since ``touched_before`` (maybe no job behind them), locked."""
        stmt = (
            select(SyncRun)
            .where(SyncRun.status == "queued", SyncRun.updated_at < touched_before)
            .order_by(SyncRun.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.scalars(stmt)).all())

    async def beat(
        self, session: AsyncSession, account_id: uuid.UUID, run_id: uuid.UUID, token: str, now: datetime
    ) -> bool:
        result = await session.execute(
            update(SyncRun)
            .where(SyncRun.account_id == account_id, SyncRun.id == run_id, SyncRun.worker_token == token)
            .where(SyncRun.status == "running")
            .values(heartbeat_at=now)
        )
        return bool(getattr(result, "rowcount", 0))


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_numbers: list[str] = field(default_factory=list)
    unknown: int = 0


_PO_DATA_COLUMNS = (
    ("state", "text"),
    ("purchase_order_type", "text"),
    ("purchase_order_date", "timestamptz"),
    ("changed_at", "timestamptz"),
    ("state_changed_at", "timestamptz"),
    ("vendor_code", "text"),
    ("buying_party_id", "text"),
    ("ship_to_party_id", "text"),
    ("bill_to_party_id", "text"),
    ("deal_code", "text"),
    ("payment_method", "text"),
    ("ship_window_start", "timestamptz"),
    ("ship_window_end", "timestamptz"),
    ("delivery_window_start", "timestamptz"),
    ("delivery_window_end", "timestamptz"),
    ("currency", "text"),
    ("total_net_cost", "numeric"),
)
_ITEM_DATA_COLUMNS = (
    ("asin", "text"),
    ("vendor_sku", "text"),
    ("ordered_quantity", "integer"),
    ("unit_of_measure", "text"),
    ("unit_size", "integer"),
    ("is_back_order_allowed", "boolean"),
    ("net_cost", "numeric"),
    ("list_price", "numeric"),
    ("currency", "text"),
)
_ITEM_STATUS_COLUMNS = (
    ("confirmation_status", "text"),
    ("acknowledged_quantity", "integer"),
    ("rejected_quantity", "integer"),
    ("cancelled_quantity", "integer"),
    ("receive_status", "text"),
    ("received_quantity", "integer"),
    ("last_received_at", "timestamptz"),
)
_SHIPMENT_DATA_COLUMNS = (
    ("transaction_type", "text"),
    ("buyer_reference_number", "text"),
    ("current_status", "text"),
    ("current_status_at", "timestamptz"),
    ("shipment_created_at", "timestamptz"),
    ("shipment_confirmed_at", "timestamptz"),
    ("shipped_at", "timestamptz"),
    ("estimated_delivery_at", "timestamptz"),
    ("delivered_at", "timestamptz"),
    ("vendor_code", "text"),
    ("ship_from_party_id", "text"),
    ("ship_to_party_id", "text"),
    ("carrier_code", "text"),
    ("bill_of_lading_number", "text"),
    ("carton_count", "integer"),
    ("purchase_order_numbers", "text[]"),
    ("data", "jsonb"),
)


def _recordset(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {type_}" for name, type_ in columns)


def _names(columns: Sequence[tuple[str, str]], prefix: str = "") -> str:
    return ", ".join(prefix + name for name, _ in columns)


_STORE_FOR_VENDOR_CODE = """(
    SELECT s.id FROM stores s
    WHERE s.account_id = CAST(:account_id AS uuid) AND s.vendor_codes @> ARRAY[r.vendor_code]
    ORDER BY (s.status = 'active') DESC, s.created_at, s.id LIMIT 1)"""

_UPSERT_ORDERS = text(
    f"""
INSERT INTO purchase_orders AS po (
    id, account_id, connection_id, store_id, purchase_order_number, {_names(_PO_DATA_COLUMNS)},
    raw_document_id, sync_run_id)
SELECT gen_random_uuid(), CAST(:account_id AS uuid), CAST(:connection_id AS uuid), {_STORE_FOR_VENDOR_CODE},
       r.purchase_order_number, {_names(_PO_DATA_COLUMNS, "r.")},
       CAST(:raw_document_id AS uuid), CAST(:sync_run_id AS uuid)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(purchase_order_number text, {_recordset(_PO_DATA_COLUMNS)})
ON CONFLICT (account_id, purchase_order_number) DO UPDATE SET
    {", ".join(f"{n} = excluded.{n}" for n, _ in _PO_DATA_COLUMNS)},
    store_id = excluded.store_id,
    raw_document_id = excluded.raw_document_id,
    sync_run_id = excluded.sync_run_id,
    updated_at = clock_timestamp()
WHERE ({_names(_PO_DATA_COLUMNS, "po.")}, po.store_id)
      IS DISTINCT FROM ({_names(_PO_DATA_COLUMNS, "excluded.")}, excluded.store_id)
RETURNING po.id, po.purchase_order_number, (po.xmax = 0) AS inserted
""",  # noqa: S608 - built from the constant column lists above, never from input
)

# A stored purchase order by number: one unique-index probe per row (LIMIT 1 keeps the planner from turning
# it into a join that may hash every purchase order of the account for each page). Statuses are written as
# INSERT ... ON CONFLICT DO UPDATE of rows that always conflict for the same reason: arbitration is an index
# probe per row, where an UPDATE ... FROM may pick a plan that scans the account's orders for every page.
_PO_FOUND = """SELECT p.account_id, p.id, p.connection_id, p.state FROM purchase_orders p
    WHERE p.account_id = CAST(:account_id AS uuid) AND p.purchase_order_number = r.purchase_order_number
    LIMIT 1"""

# Items come back as the distinct orders they belong to (at most one row per order of the page instead of one per
# item written): all the caller needs to count an order as updated.
_UPSERT_ITEMS = text(
    f"""
WITH written AS (
INSERT INTO purchase_order_items AS it (
    id, account_id, purchase_order_id, item_sequence_number, {_names(_ITEM_DATA_COLUMNS)})
SELECT gen_random_uuid(), po.account_id, po.id, r.item_sequence_number, {_names(_ITEM_DATA_COLUMNS, "r.")}
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r(purchase_order_number text, item_sequence_number text, {_recordset(_ITEM_DATA_COLUMNS)})
CROSS JOIN LATERAL ({_PO_FOUND}) po
ON CONFLICT (account_id, purchase_order_id, item_sequence_number) DO UPDATE SET
    {", ".join(f"{n} = excluded.{n}" for n, _ in _ITEM_DATA_COLUMNS)},
    updated_at = clock_timestamp()
WHERE ({_names(_ITEM_DATA_COLUMNS, "it.")}) IS DISTINCT FROM ({_names(_ITEM_DATA_COLUMNS, "excluded.")})
RETURNING it.purchase_order_id)
SELECT DISTINCT purchase_order_id FROM written
""",  # noqa: S608 - built from the constant column lists above, never from input
)

_UPDATE_ORDER_STATUS = text(
    f"""
INSERT INTO purchase_orders AS po (
    id, account_id, connection_id, purchase_order_number, state,
    purchase_order_status, status_updated_at, status_raw_document_id)
SELECT found.id, found.account_id, found.connection_id, r.purchase_order_number, found.state,
       r.purchase_order_status, r.status_updated_at, CAST(:raw_document_id AS uuid)
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r(purchase_order_number text, purchase_order_status text, status_updated_at timestamptz)
CROSS JOIN LATERAL ({_PO_FOUND}) found
ON CONFLICT (account_id, purchase_order_number) DO UPDATE SET
    purchase_order_status = excluded.purchase_order_status,
    status_updated_at = excluded.status_updated_at,
    status_raw_document_id = excluded.status_raw_document_id,
    updated_at = clock_timestamp()
WHERE (po.purchase_order_status, po.status_updated_at)
      IS DISTINCT FROM (excluded.purchase_order_status, excluded.status_updated_at)
RETURNING po.purchase_order_number
""",  # noqa: S608 - built from the constant column lists above, never from input
)

_UPDATE_ITEM_STATUS = text(
    f"""
WITH written AS (
INSERT INTO purchase_order_items AS it (
    id, account_id, purchase_order_id, item_sequence_number, {_names(_ITEM_STATUS_COLUMNS)})
SELECT gen_random_uuid(), found.account_id, found.id, r.item_sequence_number, {_names(_ITEM_STATUS_COLUMNS, "r.")}
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r(purchase_order_number text, item_sequence_number text, {_recordset(_ITEM_STATUS_COLUMNS)})
CROSS JOIN LATERAL ({_PO_FOUND}) found
ON CONFLICT (account_id, purchase_order_id, item_sequence_number) DO UPDATE SET
    {", ".join(f"{n} = excluded.{n}" for n, _ in _ITEM_STATUS_COLUMNS)},
    updated_at = clock_timestamp()
WHERE ({_names(_ITEM_STATUS_COLUMNS, "it.")}) IS DISTINCT FROM ({_names(_ITEM_STATUS_COLUMNS, "excluded.")})
RETURNING it.purchase_order_id)
SELECT DISTINCT purchase_order_id FROM written
""",  # noqa: S608 - built from the constant column lists above, never from input
)

_UPSERT_SHIPMENTS = text(
    f"""
INSERT INTO shipments AS sh (
    id, account_id, connection_id, vendor_shipment_identifier, {_names(_SHIPMENT_DATA_COLUMNS)},
    raw_document_id, sync_run_id)
SELECT gen_random_uuid(), CAST(:account_id AS uuid), CAST(:connection_id AS uuid), r.vendor_shipment_identifier,
       {_names(_SHIPMENT_DATA_COLUMNS, "r.")}, CAST(:raw_document_id AS uuid), CAST(:sync_run_id AS uuid)
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r(vendor_shipment_identifier text, {_recordset(_SHIPMENT_DATA_COLUMNS)})
ON CONFLICT (account_id, vendor_shipment_identifier) DO UPDATE SET
    {", ".join(f"{n} = excluded.{n}" for n, _ in _SHIPMENT_DATA_COLUMNS)},
    raw_document_id = excluded.raw_document_id,
    sync_run_id = excluded.sync_run_id,
    updated_at = clock_timestamp()
WHERE ({_names(_SHIPMENT_DATA_COLUMNS, "sh.")}) IS DISTINCT FROM ({_names(_SHIPMENT_DATA_COLUMNS, "excluded.")})
RETURNING sh.vendor_shipment_identifier, (sh.xmax = 0) AS inserted
""",  # noqa: S608 - built from the constant column lists above, never from input
)


def _count(numbers: Sequence[str], inserted: set[str], touched: set[str]) -> UpsertCounts:
    counts = UpsertCounts()
    for number in dict.fromkeys(numbers):
        if number in inserted:
            counts.created += 1
        elif number in touched:
            counts.updated += 1
            counts.changed_numbers.append(number)
        else:
            counts.unchanged += 1
    return counts


class PurchaseOrderRepository(AccountScopedRepository[PurchaseOrder]):
    model = PurchaseOrder
    not_found_message = "No such purchase order."

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        store_id: uuid.UUID | None = None,
        state: str | None = None,
        ordered_after: datetime | None = None,
        ordered_before: datetime | None = None,
        asin: str | None = None,
        vendor_code: str | None = None,
    ) -> Select[PurchaseOrder]:
        stmt = self.select(account_id)
        if store_id is not None:
            stmt = stmt.where(PurchaseOrder.store_id == store_id)
        if state is not None:
            stmt = stmt.where(PurchaseOrder.state == state)
        if ordered_after is not None:
            stmt = stmt.where(PurchaseOrder.purchase_order_date >= ordered_after)
        if ordered_before is not None:
            stmt = stmt.where(PurchaseOrder.purchase_order_date < ordered_before)
        if vendor_code is not None:
            stmt = stmt.where(PurchaseOrder.vendor_code == vendor_code)
        if asin is not None:
            stmt = stmt.where(
                select(PurchaseOrderItem.id)
                .where(
                    PurchaseOrderItem.account_id == account_id,
                    PurchaseOrderItem.purchase_order_id == PurchaseOrder.id,
                    PurchaseOrderItem.asin == asin,
                )
                .exists()
            )
        return stmt

    async def by_number(self, session: AsyncSession, account_id: uuid.UUID, number: str) -> PurchaseOrder | None:
        row: PurchaseOrder | None = await session.scalar(
            self.select(account_id).where(PurchaseOrder.purchase_order_number == number)
        )
        return row

    async def items(
        self, session: AsyncSession, account_id: uuid.UUID, purchase_order_id: uuid.UUID
    ) -> list[PurchaseOrderItem]:
        stmt = (
            select(PurchaseOrderItem)
            .where(PurchaseOrderItem.account_id == account_id, PurchaseOrderItem.purchase_order_id == purchase_order_id)
            .order_by(func.length(PurchaseOrderItem.item_sequence_number), PurchaseOrderItem.item_sequence_number)
        )
        return list((await session.scalars(stmt)).all())

    async def count(self, session: AsyncSession, account_id: uuid.UUID) -> int:
        return int(await session.scalar(select(func.count()).where(PurchaseOrder.account_id == account_id)) or 0)

    async def _numbers(self, session: AsyncSession, account_id: uuid.UUID, ids: set[uuid.UUID]) -> set[str]:
        if not ids:
            return set()
        found = await session.scalars(
            select(PurchaseOrder.purchase_order_number).where(
                PurchaseOrder.account_id == account_id, PurchaseOrder.id.in_(ids)
            )
        )
        return set(found.all())

    async def upsert_page(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        *,
        connection_id: uuid.UUID,
        sync_run_id: uuid.UUID,
        raw_document_id: uuid.UUID,
        orders: Sequence[dict[str, Any]],
        items: Sequence[dict[str, Any]],
    ) -> UpsertCounts:
        """Write one page of orders and their items; a purchase order counts as updated if it or an item changed."""
        if not orders:
            return UpsertCounts()
        params = {
            "account_id": str(account_id),
            "connection_id": str(connection_id),
            "sync_run_id": str(sync_run_id),
            "raw_document_id": str(raw_document_id),
        }
        result = await session.execute(_UPSERT_ORDERS, {**params, "rows": _json(orders)})
        inserted: set[str] = set()
        touched: set[str] = set()
        written: dict[uuid.UUID, str] = {}
        for po_id, number, was_inserted in result:
            (inserted if was_inserted else touched).add(number)
            written[po_id] = number
        if items:
            item_result = await session.execute(_UPSERT_ITEMS, {"account_id": str(account_id), "rows": _json(items)})
            item_owners = {po_id for (po_id,) in item_result}
            touched.update(written[po_id] for po_id in item_owners if po_id in written)
            touched.update(await self._numbers(session, account_id, item_owners - written.keys()))
        return _count([o["purchase_order_number"] for o in orders], inserted, touched)

    async def update_status_page(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        *,
        raw_document_id: uuid.UUID,
        orders: Sequence[dict[str, Any]],
        items: Sequence[dict[str, Any]],
    ) -> UpsertCounts:
        """Apply statuses to known purchase orders; statuses of orders not synced yet are counted as unknown."""
        if not orders:
            return UpsertCounts()
        numbers = [o["purchase_order_number"] for o in orders]
        known = set(
            (
                await session.scalars(
                    select(PurchaseOrder.purchase_order_number).where(
                        PurchaseOrder.account_id == account_id, PurchaseOrder.purchase_order_number.in_(numbers)
                    )
                )
            ).all()
        )
        params = {"account_id": str(account_id), "raw_document_id": str(raw_document_id)}
        result = await session.execute(_UPDATE_ORDER_STATUS, {**params, "rows": _json(orders)})
        touched = {number for (number,) in result}
        if items:
            rows = await session.execute(_UPDATE_ITEM_STATUS, {"account_id": str(account_id), "rows": _json(items)})
            touched.update(await self._numbers(session, account_id, {po_id for (po_id,) in rows}))
        counts = _count([n for n in numbers if n in known], set(), touched)
        counts.unknown = len(set(numbers) - known)
        return counts


class ShipmentRepository(AccountScopedRepository[Shipment]):
    model = Shipment
    not_found_message = "No such shipment."

    def filtered(
        self,
        account_id: uuid.UUID,
        *,
        purchase_order_number: str | None = None,
        status: str | None = None,
        vendor_code: str | None = None,
    ) -> Select[Shipment]:
        stmt = self.select(account_id)
        if purchase_order_number is not None:
            stmt = stmt.where(Shipment.purchase_order_numbers.contains([purchase_order_number]))
        if status is not None:
            stmt = stmt.where(Shipment.current_status == status)
        if vendor_code is not None:
            stmt = stmt.where(Shipment.vendor_code == vendor_code)
        return stmt

    async def upsert_page(
        self,
        session: AsyncSession,
        account_id: uuid.UUID,
        *,
        connection_id: uuid.UUID,
        sync_run_id: uuid.UUID,
        raw_document_id: uuid.UUID,
        shipments: Sequence[dict[str, Any]],
    ) -> UpsertCounts:
        if not shipments:
            return UpsertCounts()
        result = await session.execute(
            _UPSERT_SHIPMENTS,
            {
                "account_id": str(account_id),
                "connection_id": str(connection_id),
                "sync_run_id": str(sync_run_id),
                "raw_document_id": str(raw_document_id),
                "rows": _json(shipments),
            },
        )
        inserted: set[str] = set()
        touched: set[str] = set()
        for identifier, was_inserted in result:
            (inserted if was_inserted else touched).add(identifier)
        return _count([s["vendor_shipment_identifier"] for s in shipments], inserted, touched)


class InvoiceSubmissionRepository(AccountScopedRepository[InvoiceSubmission]):
    model = InvoiceSubmission
    not_found_message = "No such invoice submission."

    def filtered(
        self, account_id: uuid.UUID, *, connection_id: uuid.UUID | None = None, status: str | None = None
    ) -> Select[InvoiceSubmission]:
        return self.select_matching(account_id, connection_id=connection_id, status=status)

    async def number_taken(
        self, session: AsyncSession, account_id: uuid.UUID, connection_id: uuid.UUID, number: str
    ) -> bool:
        stmt = self.select(account_id).where(
            InvoiceSubmission.connection_id == connection_id, InvoiceSubmission.invoice_number == number
        )
        return await session.scalar(stmt.limit(1)) is not None


connections = ConnectionRepository()
sync_runs = SyncRunRepository()
purchase_orders = PurchaseOrderRepository()
shipments = ShipmentRepository()
invoice_submissions = InvoiceSubmissionRepository()
