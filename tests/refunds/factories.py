"""Ledger, invoice and purchase-order rows inserted directly (the import pipeline is another package's job)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem, Shipment, VendorConnection
from acorn_api.ledger.archive import RawDocumentRepository
from acorn_api.ledger.models import Import, Invoice, LedgerEntry, PaymentLine


def _key() -> str:
    return uuid.uuid4().hex


async def make_entry(
    session: AsyncSession,
    account_id: uuid.UUID,
    entry_type: str = "shortage_claim",
    amount: str | Decimal = "-120.00",
    *,
    occurred_on: date = date(2026, 11, 2),
    natural_key: str | None = None,
    commit: bool = True,
    **fields: Any,
) -> LedgerEntry:
    entry = LedgerEntry(
        id=uuid.uuid4(),
        account_id=account_id,
        entry_type=entry_type,
        amount=Decimal(amount),
        currency=fields.pop("currency", "USD"),
        occurred_on=occurred_on,
        natural_key=natural_key or f"test:{_key()}",
        **fields,
    )
    session.add(entry)
    if commit:
        await session.commit()
    else:
        await session.flush()
    return entry


async def make_import(session: AsyncSession, account_id: uuid.UUID, content: bytes | None = None) -> Import:
    document_id = None
    if content is not None:
        archived = await RawDocumentRepository().store(
            session,
            account_id,
            content,
            source="import:remittance",
            fetched_at=datetime.now(UTC),
            content_type="text/csv",
        )
        document_id = archived.id
    imp = Import(
        id=uuid.uuid4(),
        account_id=account_id,
        report_type="remittance",
        status="succeeded",
        sha256=_key() + _key(),
        size_bytes=len(content or b""),
        raw_document_id=document_id,
    )
    session.add(imp)
    await session.commit()
    return imp


async def make_invoice(
    session: AsyncSession,
    account_id: uuid.UUID,
    invoice_number: str,
    *,
    due_on: date | None = date(2026, 11, 30),
    po_number: str | None = None,
    amount: str = "1000.00",
) -> Invoice:
    inv = Invoice(
        id=uuid.uuid4(),
        account_id=account_id,
        invoice_number=invoice_number,
        invoice_date=date(2026, 10, 1),
        due_on=due_on,
        po_number=po_number,
        amount=Decimal(amount),
        currency="USD",
        source="import",
    )
    session.add(inv)
    await session.commit()
    return inv


async def make_connection(session: AsyncSession, account_id: uuid.UUID) -> VendorConnection:
    conn = VendorConnection(
        account_id=account_id,
        name=f"conn-{_key()[:8]}",
        region="NA",
        lwa_client_id_encrypted=b"x",
        lwa_client_secret_encrypted=b"x",
        lwa_refresh_token_encrypted=b"x",
        credentials_updated_at=datetime.now(UTC),
    )
    session.add(conn)
    await session.flush()
    return conn


async def make_purchase_order(
    session: AsyncSession,
    account_id: uuid.UUID,
    po_number: str,
    *,
    items: list[dict[str, Any]],
    with_documents: bool = True,
    shipment: bool = True,
) -> PurchaseOrder:
    """A PO with items (ordered/acknowledged/received quantities), its raw documents and an ASN."""
    conn = await make_connection(session, account_id)
    repo = RawDocumentRepository()
    po_doc = status_doc = None
    if with_documents:
        po_doc = (
            await repo.store(
                session,
                account_id,
                f'{{"purchaseOrderNumber": "{po_number}"}}'.encode(),
                source="orders",
                fetched_at=datetime.now(UTC),
            )
        ).id
        status_doc = (
            await repo.store(
                session,
                account_id,
                f'{{"purchaseOrderNumber": "{po_number}", "status": "received"}}'.encode(),
                source="order_status",
                fetched_at=datetime.now(UTC),
            )
        ).id
    po = PurchaseOrder(
        account_id=account_id,
        connection_id=conn.id,
        purchase_order_number=po_number,
        state="Acknowledged",
        currency="USD",
        raw_document_id=po_doc,
        status_raw_document_id=status_doc,
    )
    session.add(po)
    await session.flush()
    for n, item in enumerate(items, start=1):
        session.add(
            PurchaseOrderItem(
                account_id=account_id,
                purchase_order_id=po.id,
                item_sequence_number=str(n),
                currency="USD",
                **item,
            )
        )
    if shipment:
        session.add(
            Shipment(
                account_id=account_id,
                connection_id=conn.id,
                vendor_shipment_identifier=f"ASN-{po_number}",
                purchase_order_numbers=[po_number],
                bill_of_lading_number="BOL-1",
                carrier_code="UPSN",
                carton_count=3,
                data={},
            )
        )
    await session.commit()
    return po


async def make_payment_line(
    session: AsyncSession, account_id: uuid.UUID, invoice_number: str, payment_number: str = "PAY-1"
) -> PaymentLine:
    line = PaymentLine(
        id=uuid.uuid4(),
        account_id=account_id,
        payment_number=payment_number,
        invoice_number=invoice_number,
        entry_type="payment",
        invoice_amount=Decimal("1000.00"),
        amount_paid=Decimal("880.00"),
        remaining_amount=Decimal("0"),
        currency="USD",
        natural_key=f"pl:{_key()}",
    )
    session.add(line)
    await session.commit()
    return line


async def make_invoice_submission(
    session: AsyncSession, account_id: uuid.UUID, invoice_number: str, po_number: str, lines: list[tuple[int, int, str]]
) -> Any:
    """An invoice sent to Amazon: (item sequence number, invoiced quantity, unit cost) per line."""
    from acorn_api.amazon.models import InvoiceSubmission

    conn = await make_connection(session, account_id)
    payload = {
        "invoiceType": "Invoice",
        "id": invoice_number,
        "items": [
            {
                "itemSequenceNumber": seq,
                "invoicedQuantity": {"amount": qty, "unitOfMeasure": "Eaches"},
                "netCost": {"currencyCode": "USD", "amount": cost},
                "purchaseOrderNumber": po_number,
            }
            for seq, qty, cost in lines
        ],
    }
    sub = InvoiceSubmission(
        account_id=account_id,
        connection_id=conn.id,
        invoice_number=invoice_number,
        invoice_type="Invoice",
        purchase_order_numbers=[po_number],
        currency="USD",
        total_amount=Decimal("0"),
        payload=payload,
        status="succeeded",
    )
    session.add(sub)
    await session.commit()
    return sub
