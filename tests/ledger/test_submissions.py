"""Invoices Amazon accepted through the connector enter the ledger once, with the submission as source."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.ledger import service
from tests.conftest import Tenant
from tests.ledger import files
from tests.ledger.conftest import RunImport, all_entries


@dataclass
class Submission:
    invoice_number: str
    total_amount: Decimal
    invoice_type: str = "Invoice"
    currency: str = "USD"
    purchase_order_numbers: list[str] = field(default_factory=lambda: ["PO777"])
    payload: dict[str, Any] = field(
        default_factory=lambda: {"date": "2026-01-20T00:00:00Z", "remitToParty": {"partyId": "ACME1"}}
    )
    id: uuid.UUID = field(default_factory=uuid.uuid4)


async def test_an_accepted_submission_is_one_invoice_entry_even_when_polled_twice(
    session: AsyncSession, client: httpx.AsyncClient, account: Tenant
) -> None:
    submission = Submission("S-100", Decimal("1234.50"))
    first = await service.record_accepted_submission(session, account.id, submission)
    again = await service.record_accepted_submission(session, account.id, submission)
    await session.commit()
    assert first is not None and again is None
    invoice = (await client.get("/v1/invoices/S-100", headers=account.headers())).json()
    assert (invoice["source"], invoice["source_submission_id"], invoice["amount"]) == (
        "submission",
        str(submission.id),
        "1234.5000",
    )
    assert invoice["invoice_date"] == "2026-01-20" and invoice["po_number"] == "PO777"
    [entry] = invoice["entries"]
    assert (entry["natural_key"], entry["source_submission_id"]) == (f"submission:{submission.id}", str(submission.id))


async def test_an_erp_file_with_a_submitted_invoice_does_not_count_it_twice(
    session: AsyncSession, run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    await service.record_accepted_submission(session, account.id, Submission("E-1", Decimal("500.10")))
    await session.commit()
    rows, _ = files.erp_invoices(["E-1", "E-2"])
    imp = await run_import(files.to_csv(rows).encode(), "invoices")
    assert (imp["status"], imp["rows_loaded"], imp["rows_duplicate"]) == ("succeeded", 1, 1)
    invoices = await all_entries(client, account, entry_type="invoice")
    assert sorted(e["invoice_number"] for e in invoices) == ["E-1", "E-2"]


async def test_a_credit_note_is_a_negative_adjustment(
    session: AsyncSession, client: httpx.AsyncClient, account: Tenant
) -> None:
    await service.record_accepted_submission(
        session, account.id, Submission("CN-1", Decimal("40.00"), invoice_type="CreditNote")
    )
    await session.commit()
    [entry] = await all_entries(client, account)
    assert (entry["entry_type"], entry["amount"], entry["reference"]) == ("adjustment", "-40.0000", "CN-1")
