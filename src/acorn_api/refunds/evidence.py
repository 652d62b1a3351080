"""Evidence for a case and the dispute packet: what ACORN holds, what is missing, and a ZIP to file by hand."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import zipfile
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller
from acorn_api.core.errors import invalid_field
from acorn_api.core.money import quantize
from acorn_api.ledger.archive import decompress
from acorn_api.refunds import repository as repo
from acorn_api.refunds.models import CaseType, RefundCase
from acorn_api.refunds.schemas import (
    CaseOut,
    DisputePacket,
    EvidenceItem,
    PacketDocument,
    PacketLine,
    PredictedShortage,
    PredictedShortageList,
)

# What a dispute of each type needs in Vendor Central.
REQUIRED: dict[str, tuple[str, ...]] = {
    CaseType.shortage: (
        "deduction",
        "invoice",
        "purchase_order",
        "acknowledgement",
        "shipment",
        "receiving_status",
        "remittance_line",
    ),
    CaseType.price_claim: ("deduction", "invoice", "purchase_order", "remittance_line"),
    CaseType.compliance_chargeback: ("deduction", "purchase_order", "shipment"),
}
DEFAULT_REQUIRED = ("deduction",)


def _items(rows: repo.EvidenceRows, case: RefundCase) -> list[EvidenceItem]:
    out: list[EvidenceItem] = []
    o = rows.origin
    out.append(
        EvidenceItem(
            kind="deduction",
            present=o is not None,
            description="the deduction row (remittance, chargeback or co-op report)",
            reference=(o.reference or o.invoice_number) if o else None,
            raw_document_id=rows.import_document_id,
            details={
                "entry_type": o.entry_type,
                "amount": str(o.amount),
                "currency": o.currency,
                "occurred_on": o.occurred_on.isoformat(),
                "description": o.description,
                "source_import_id": str(o.source_import_id) if o.source_import_id else None,
                "source_row": o.source_row,
            }
            if o
            else {},
        )
    )
    inv = rows.invoice
    sub = rows.submissions[0] if rows.submissions else None
    out.append(
        EvidenceItem(
            kind="invoice",
            present=inv is not None or sub is not None,
            description="the invoice Amazon was billed",
            reference=inv.invoice_number if inv else (sub.invoice_number if sub else case.invoice_number),
            raw_document_id=sub.raw_document_id if sub else None,
            details={
                "amount": str(inv.amount) if inv else (str(sub.total_amount) if sub else None),
                "currency": inv.currency if inv else (sub.currency if sub else None),
                "invoice_date": inv.invoice_date.isoformat() if inv and inv.invoice_date else None,
                "due_on": inv.due_on.isoformat() if inv and inv.due_on else None,
                "submission_status": sub.status if sub else None,
            },
        )
    )
    po = rows.purchase_order
    out.append(
        EvidenceItem(
            kind="purchase_order",
            present=po is not None,
            description="the purchase order: ordered quantities and costs",
            reference=po.purchase_order_number if po else case.po_number,
            raw_document_id=po.raw_document_id if po else None,
            details={
                "state": po.state,
                "ordered_units": sum(i.ordered_quantity or 0 for i in rows.po_items),
                "total_net_cost": str(po.total_net_cost) if po.total_net_cost is not None else None,
                "currency": po.currency,
            }
            if po
            else {},
        )
    )
    acked = [i for i in rows.po_items if i.acknowledged_quantity is not None or i.confirmation_status]
    out.append(
        EvidenceItem(
            kind="acknowledgement",
            present=bool(acked),
            description="the vendor's acknowledgement of each PO line",
            reference=po.purchase_order_number if po else case.po_number,
            raw_document_id=po.raw_document_id if po and acked else None,
            details={"acknowledged_units": sum(i.acknowledged_quantity or 0 for i in acked)} if acked else {},
        )
    )
    ship = rows.shipments[0] if rows.shipments else None
    out.append(
        EvidenceItem(
            kind="shipment",
            present=ship is not None,
            description="the ASN / shipment: carrier, bill of lading, cartons, delivery",
            reference=ship.vendor_shipment_identifier if ship else None,
            raw_document_id=ship.raw_document_id if ship else None,
            details={
                "shipments": len(rows.shipments),
                "bill_of_lading_number": ship.bill_of_lading_number,
                "carrier_code": ship.carrier_code,
                "carton_count": ship.carton_count,
                "shipped_at": ship.shipped_at.isoformat() if ship.shipped_at else None,
                "delivered_at": ship.delivered_at.isoformat() if ship.delivered_at else None,
            }
            if ship
            else {},
        )
    )
    received = [i for i in rows.po_items if i.received_quantity is not None]
    out.append(
        EvidenceItem(
            kind="receiving_status",
            present=bool(received),
            description="what Amazon counted as received, per PO line (getPurchaseOrdersStatus)",
            reference=po.purchase_order_number if po else case.po_number,
            raw_document_id=po.status_raw_document_id if po and received else None,
            details={"received_units": sum(i.received_quantity or 0 for i in received)} if received else {},
        )
    )
    pl = rows.payment_lines[0] if rows.payment_lines else None
    out.append(
        EvidenceItem(
            kind="remittance_line",
            present=pl is not None,
            description="the remittance line that short-paid the invoice",
            reference=pl.payment_number if pl else case.payment_number,
            details={
                "lines": len(rows.payment_lines),
                "invoice_amount": str(pl.invoice_amount) if pl.invoice_amount is not None else None,
                "amount_paid": str(pl.amount_paid) if pl.amount_paid is not None else None,
                "remaining_amount": str(pl.remaining_amount) if pl.remaining_amount is not None else None,
            }
            if pl
            else {},
        )
    )
    return out


def required_for(case: RefundCase) -> tuple[str, ...]:
    return REQUIRED.get(case.type, DEFAULT_REQUIRED)


async def evidence_of(session: AsyncSession, caller: Caller, case: RefundCase) -> tuple[list[EvidenceItem], list[str]]:
    """Every kind of evidence ACORN looked for, present or not, and the kinds this case's dispute needs but lacks."""
    rows = await repo.evidence_rows(session, caller.account_id, case)
    items = _items(rows, case)
    present = {i.kind for i in items if i.present}
    missing = [kind for kind in required_for(case) if kind not in present]
    return items, missing


def _invoiced(rows: repo.EvidenceRows) -> dict[str, tuple[int, Decimal | None]]:
    """Invoiced quantity (and unit cost) per PO line key: item sequence number, else ASIN."""
    out: dict[str, tuple[int, Decimal | None]] = {}
    for sub in rows.submissions:
        for item in (sub.payload or {}).get("items", []):
            key = str(item.get("itemSequenceNumber") or item.get("amazonProductIdentifier") or "")
            qty = int((item.get("invoicedQuantity") or {}).get("amount") or 0)
            cost_raw = (item.get("netCost") or {}).get("amount")
            cost = Decimal(str(cost_raw)) if cost_raw is not None else None
            prev = out.get(key, (0, cost))
            out[key] = (prev[0] + qty, cost)
            asin = item.get("amazonProductIdentifier")
            if asin:
                out.setdefault(f"asin:{asin}", (0, cost))
                out[f"asin:{asin}"] = (out[f"asin:{asin}"][0] + qty, cost)
    if not rows.submissions:
        for e in rows.invoice_line_entries:
            if e.asin and e.quantity is not None:
                prev = out.get(f"asin:{e.asin}", (0, None))
                out[f"asin:{e.asin}"] = (prev[0] + e.quantity, None)
    return out


def packet_lines(rows: repo.EvidenceRows, case: RefundCase) -> list[PacketLine]:
    invoiced = _invoiced(rows)
    lines: list[PacketLine] = []
    for item in rows.po_items:
        if case.asin and item.asin and item.asin != case.asin:
            continue
        inv = invoiced.get(str(item.item_sequence_number)) or invoiced.get(f"asin:{item.asin}")
        inv_qty = inv[0] if inv else None
        cost = item.net_cost if item.net_cost is not None else (inv[1] if inv else None)
        disputed = None
        if inv_qty is not None and item.received_quantity is not None:
            disputed = max(inv_qty - item.received_quantity, 0)
        lines.append(
            PacketLine(
                po_number=rows.purchase_order.purchase_order_number if rows.purchase_order else case.po_number,
                item_sequence_number=item.item_sequence_number,
                asin=item.asin,
                vendor_sku=item.vendor_sku,
                ordered_quantity=item.ordered_quantity,
                acknowledged_quantity=item.acknowledged_quantity,
                received_quantity=item.received_quantity,
                invoiced_quantity=inv_qty,
                disputed_quantity=disputed,
                unit_cost=cost,
                disputed_amount=quantize(cost * disputed) if cost is not None and disputed is not None else None,
            )
        )
    return lines


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _file_name(doc: Any) -> str:
    ext = "json" if "json" in doc.content_type else ("csv" if "csv" in doc.content_type else "bin")
    if "spreadsheet" in doc.content_type or "excel" in doc.content_type:
        ext = "xlsx"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in doc.source)[:60]
    return f"documents/{safe}-{doc.id}.{ext}"


async def dispute_packet(
    session: AsyncSession, caller: Caller, case: RefundCase, now: datetime
) -> tuple[DisputePacket, list[Any]]:
    """The packet and the raw documents behind it (content loaded, for the ZIP)."""
    rows = await repo.evidence_rows(session, caller.account_id, case)
    items = _items(rows, case)
    present = {i.kind for i in items if i.present}
    missing = [kind for kind in required_for(case) if kind not in present]
    lines = packet_lines(rows, case)
    doc_ids = list(dict.fromkeys(i.raw_document_id for i in items if i.raw_document_id is not None))
    docs = await repo.raw_documents(session, caller.account_id, doc_ids)
    invoiced = _sum([line.invoiced_quantity for line in lines])
    received = _sum([line.received_quantity for line in lines])
    disputed = _sum([line.disputed_quantity for line in lines])
    references = {
        "invoice_number": case.invoice_number,
        "po_number": case.po_number or (rows.invoice.po_number if rows.invoice else None),
        "payment_number": case.payment_number,
        "reference": case.reference,
        "vendor_code": case.vendor_code,
        "asin": case.asin,
        "dispute_reference": case.dispute_reference,
    }
    what = {
        CaseType.shortage: "Shortage claim",
        CaseType.price_claim: "Price claim",
        CaseType.compliance_chargeback: "Chargeback",
    }.get(CaseType(case.type), "Deduction")
    claim = f"{what} {case.reference or case.invoice_number or ''} of {case.amount:f} {case.currency}"
    claim += f" taken on {case.opened_on.isoformat()}"
    if case.invoice_number:
        claim += f" against invoice {case.invoice_number}"
    po_ref = references["po_number"]
    if po_ref:
        claim += f" (PO {po_ref})"
    claim += "."
    if invoiced is not None and received is not None:
        claim += f" We invoiced {invoiced} units; Amazon's receiving status shows {received}"
        claim += f"; {disputed} units are in question." if disputed else "; every invoiced unit was received."
    if missing:
        claim += f" Missing evidence: {', '.join(missing)}."
    packet = DisputePacket(
        case=CaseOut.of(case, now),
        claim=claim.replace("  ", " "),
        references=references,
        quantities={"invoiced": invoiced, "received": received, "disputed": disputed},
        lines=lines,
        evidence=items,
        missing_evidence=missing,
        documents=[
            PacketDocument(
                id=d.id,
                source=d.source,
                content_type=d.content_type,
                sha256=d.sha256,
                size_bytes=d.size_bytes,
                file_name=_file_name(d),
            )
            for d in docs
        ],
        complete=not missing,
    )
    return packet, docs


CSV_COLUMNS = list(PacketLine.model_fields)


def packet_zip(packet: DisputePacket, docs: list[Any]) -> bytes:
    """summary.json, lines.csv and every raw source document, decompressed, under documents/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("summary.json", orjson.dumps(packet.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for line in packet.lines:
            row = line.model_dump(mode="json")
            writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        zf.writestr("lines.csv", text.getvalue())
        names = {d.id: d.file_name for d in packet.documents}
        for doc in docs:
            zf.writestr(names[doc.id], decompress(doc))
    return buffer.getvalue()


# ---------------------------------------------------------------- predicted shortages


def _encode(key: tuple[str, str, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(data, list) and len(data) == 3 and all(isinstance(x, str) for x in data)):
            raise ValueError("shape")
        return data[0], data[1], data[2]
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise invalid_field(["query", "cursor"], "not a cursor this API issued", "cursor_invalid") from exc


async def predicted_shortages(
    session: AsyncSession, caller: Caller, *, limit: int, cursor: str | None, include_with_case: bool
) -> PredictedShortageList:
    """Invoice lines where Amazon received fewer units than were invoiced: shortage claims to expect."""
    after = _decode(cursor) if cursor else None
    data: list[PredictedShortage] = []
    has_more = False
    last: tuple[str, str, str] | None = None
    while True:
        rows = await repo.predicted_shortages(session, caller.account_id, after=after, limit=limit + 1)
        for row in rows:
            key = (row["invoice_number"], row["po_number"], row["seq"] or "")
            if len(data) == limit:
                has_more = True
                break
            last = key
            if row["has_case"] and not include_with_case:
                continue
            shortfall = int(row["invoiced"]) - int(row["received"])
            cost = row["unit_cost"]
            data.append(
                PredictedShortage(
                    invoice_number=row["invoice_number"],
                    po_number=row["po_number"],
                    asin=row["asin"],
                    item_sequence_number=row["seq"],
                    invoiced_quantity=int(row["invoiced"]),
                    received_quantity=int(row["received"]),
                    shortfall_quantity=shortfall,
                    unit_cost=cost,
                    predicted_amount=quantize(cost * shortfall) if cost is not None else None,
                    currency=row["currency"],
                    receive_status=row["receive_status"],
                    last_received_at=row["last_received_at"],
                    invoice_due_on=row["due_on"],
                    has_case=bool(row["has_case"]),
                )
            )
        if has_more or len(rows) <= limit:
            break
        after = last
    return PredictedShortageList(data=data, next_cursor=_encode(last) if has_more and last else None, has_more=has_more)
