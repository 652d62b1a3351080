"""The dispute packet: complete for a shortage with full evidence, explicit about what is missing otherwise."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Tenant
from tests.refunds.factories import (
    make_import,
    make_invoice,
    make_invoice_submission,
    make_payment_line,
    make_purchase_order,
)

ITEMS = [
    {"asin": "B000000001", "ordered_quantity": 10, "acknowledged_quantity": 10, "received_quantity": 8,
     "net_cost": "12.50", "confirmation_status": "ACCEPTED"},
    {"asin": "B000000002", "ordered_quantity": 5, "acknowledged_quantity": 5, "received_quantity": 5,
     "net_cost": "4.00", "confirmation_status": "ACCEPTED"},
]  # fmt: skip


async def _full_shortage(session: AsyncSession, tenant: Tenant, make_case: Any) -> Any:
    await make_invoice(session, tenant.id, "INV-100", po_number="PO-100")
    await make_purchase_order(session, tenant.id, "PO-100", items=ITEMS)
    await make_invoice_submission(session, tenant.id, "INV-100", "PO-100", [(1, 10, "12.50"), (2, 5, "4.00")])
    await make_payment_line(session, tenant.id, "INV-100")
    imp = await make_import(session, tenant.id, b"Invoice Number,Amount\nINV-100,-25.00\n")
    return await make_case(
        tenant.id, "shortage_claim", "-25.00", invoice_number="INV-100", payment_number="PAY-1",
        source_import_id=imp.id, source_row=2,
    )  # fmt: skip


async def test_a_shortage_with_full_evidence_has_a_complete_packet(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    case = await _full_shortage(session, account, make_case)
    r = await client.get(f"/v1/refund-cases/{case.id}/dispute-packet", headers=account.headers())
    assert r.status_code == 200, r.text
    packet = r.json()
    assert packet["complete"] is True and packet["missing_evidence"] == []
    assert packet["quantities"] == {"invoiced": 15, "received": 13, "disputed": 2}
    first = packet["lines"][0]
    assert (first["ordered_quantity"], first["invoiced_quantity"], first["received_quantity"]) == (10, 10, 8)
    assert first["disputed_amount"] == "25.00"
    assert packet["references"]["po_number"] == "PO-100"
    assert "We invoiced 15 units" in packet["claim"] and "2 units are in question" in packet["claim"]
    assert {d["source"] for d in packet["documents"]} == {"import:remittance", "orders", "order_status"}
    assert packet["case"]["dispute_deadline"] == "2026-12-30"


async def test_the_zip_holds_the_lines_and_the_raw_documents(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    case = await _full_shortage(session, account, make_case)
    r = await client.get(
        f"/v1/refund-cases/{case.id}/dispute-packet", headers={**account.headers(), "Accept": "application/zip"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="dispute-INV-100.zip"'
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    names = zf.namelist()
    assert names[:2] == ["summary.json", "lines.csv"]
    rows = list(csv.DictReader(io.StringIO(zf.read("lines.csv").decode())))
    assert [(row["asin"], row["disputed_quantity"]) for row in rows] == [("B000000001", "2"), ("B000000002", "0")]
    documents = [n for n in names if n.startswith("documents/")]
    assert len(documents) == 3
    csv_doc = next(n for n in documents if n.endswith(".csv"))
    assert zf.read(csv_doc) == b"Invoice Number,Amount\nINV-100,-25.00\n"
    same = await client.get(f"/v1/refund-cases/{case.id}/dispute-packet?format=zip", headers=account.headers())
    assert same.headers["content-type"] == "application/zip"


async def test_missing_evidence_is_listed_explicitly(
    client: httpx.AsyncClient, account: Tenant, make_case: Any
) -> None:
    case = await make_case(account.id, "shortage_claim", "-25.00", invoice_number="INV-404")
    packet = (await client.get(f"/v1/refund-cases/{case.id}/dispute-packet", headers=account.headers())).json()
    assert packet["complete"] is False
    assert packet["missing_evidence"] == [
        "invoice", "purchase_order", "acknowledgement", "shipment", "receiving_status", "remittance_line",
    ]  # fmt: skip
    assert packet["lines"] == [] and packet["quantities"] == {"invoiced": None, "received": None, "disputed": None}
    assert "Missing evidence: invoice, purchase_order" in packet["claim"]
    zipped = await client.get(f"/v1/refund-cases/{case.id}/dispute-packet?format=zip", headers=account.headers())
    assert zipfile.ZipFile(io.BytesIO(zipped.content)).namelist() == ["summary.json", "lines.csv"]


async def test_the_case_detail_lists_evidence_present_and_missing(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    await make_purchase_order(session, account.id, "PO-7", items=ITEMS[:1], with_documents=False, shipment=False)
    case = await make_case(account.id, "shortage_claim", "-25.00", invoice_number="INV-7", po_number="PO-7")
    detail = (await client.get(f"/v1/refund-cases/{case.id}", headers=account.headers())).json()
    present = {e["kind"]: e["present"] for e in detail["evidence"]}
    assert present["purchase_order"] and present["receiving_status"] and not present["shipment"]
    assert detail["missing_evidence"] == ["invoice", "shipment", "remittance_line"]
    assert detail["allowed_transitions"] == ["closed", "needs_review", "ready_to_dispute", "written_off"]


async def test_predicted_shortages_come_from_receiving_status_before_any_deduction(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, make_case: Any
) -> None:
    await make_invoice(session, account.id, "INV-200", po_number="PO-200")
    await make_purchase_order(session, account.id, "PO-200", items=ITEMS)
    await make_invoice_submission(session, account.id, "INV-200", "PO-200", [(1, 10, "12.50"), (2, 5, "4.00")])
    r = await client.get("/v1/refund-cases/predicted-shortages", headers=account.headers())
    assert r.status_code == 200, r.text
    [line] = r.json()["data"]
    assert (line["invoice_number"], line["asin"], line["shortfall_quantity"]) == ("INV-200", "B000000001", 2)
    assert line["predicted_amount"] == "25.00" and line["has_case"] is False
    await make_case(account.id, "shortage_claim", "-25.00", invoice_number="INV-200SC")
    assert (await client.get("/v1/refund-cases/predicted-shortages", headers=account.headers())).json()["data"] == []
    withcase = await client.get(
        "/v1/refund-cases/predicted-shortages?include_with_case=true", headers=account.headers()
    )
    assert [x["has_case"] for x in withcase.json()["data"]] == [True]
