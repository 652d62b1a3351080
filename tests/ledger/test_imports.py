"""Uploading each report type, in each variant, gives exact ledger entries traceable to file and row."""

from __future__ import annotations

import codecs
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.ledger.archive import RawDocument, RawDocumentChunk
from acorn_api.webhooks.models import Event
from tests.conftest import Tenant
from tests.ledger import files
from tests.ledger.conftest import RunImport, Upload, all_entries


def total(entries: list[dict[str, Any]], *types: str) -> Decimal:
    return sum((Decimal(e["amount"]) for e in entries if not types or e["entry_type"] in types), Decimal(0))


def by_type(entries: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["entry_type"] for e in entries)


async def test_upload_answers_202_with_location_and_the_queued_import(upload: Upload, account: Tenant) -> None:
    r = await upload(files.to_csv(files.remittance().rows).encode(), "remittance", filename="remit.csv")
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/imports/{body['id']}"
    assert body["status"] == "queued"
    assert body["file_name"] == "remit.csv"
    assert len(body["sha256"]) == 64
    assert body["raw_document_id"]


async def test_the_same_file_again_is_the_earlier_import(upload: Upload) -> None:
    content = files.to_csv(files.remittance().rows).encode()
    first = await upload(content, "remittance")
    again = await upload(content, "remittance", filename="renamed.csv")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == f"/v1/imports/{first.json()['id']}"


async def test_the_file_is_archived_in_chunks_and_reads_back_byte_for_byte(
    upload: Upload, session: AsyncSession, account: Tenant
) -> None:
    from acorn_api.ledger.archive import raw_documents

    content = files.to_csv(files.remittance(invoices=30000).rows).encode()  # ~2.5 MB: several chunks
    r = await upload(content, "remittance")
    doc_id = r.json()["raw_document_id"]
    doc = await session.scalar(select(RawDocument).where(RawDocument.account_id == account.id))
    assert doc is not None and str(doc.id) == doc_id and doc.size_bytes == len(content)
    chunks = await session.scalar(
        select(func.count()).select_from(RawDocumentChunk).where(RawDocumentChunk.account_id == account.id)
    )
    assert chunks and chunks >= 1
    import io

    out = io.BytesIO()
    await raw_documents.spool(session, account.id, doc.id, out)
    assert out.getvalue() == content


async def test_remittance_totals_equal_the_file_to_the_cent(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    remit = files.remittance()
    imp = await run_import(files.to_csv(remit.rows).encode(), "remittance")
    assert imp["status"] == "succeeded", imp
    assert (imp["rows_total"], imp["rows_loaded"], imp["rows_duplicate"], imp["rows_rejected"]) == (
        remit.lines + 1,
        remit.lines + 1,
        0,
        0,
    )
    assert (imp["detected_format"], imp["encoding"], imp["date_format"]) == ("csv", "utf-8", "MMM d, yyyy")
    entries = await all_entries(client, account)
    assert total(entries, "invoice") == remit.invoices_total
    assert total(entries, "payment") == -remit.paid_total
    assert total(entries, "terms_discount") == -remit.discount_total
    deduction_types = {
        "shortage_claim",
        "shortage_reversal",
        "price_claim",
        "chargeback",
        "coop",
        "provision",
        "provision_reversal",
        "price_protection",
        "return",
    }
    assert total(entries, *deduction_types) == remit.deductions_total
    # what Amazon paid = what the ledger says was settled net of deductions
    assert -total(entries, "payment") + total(entries, *deduction_types) == remit.payment_total
    assert by_type(entries) == Counter(
        invoice=6,
        payment=6,
        terms_discount=6,
        shortage_claim=1,
        shortage_reversal=1,
        price_claim=1,
        chargeback=1,
        coop=1,
        provision=1,
        provision_reversal=1,
        price_protection=1,
        **{"return": 1},
    )
    shortage = next(e for e in entries if e["entry_type"] == "shortage_claim")
    assert (shortage["invoice_number"], shortage["reference"], shortage["amount"]) == ("1000", "1000SC", "-150.2500")
    assert shortage["source_import_id"] == imp["id"] and shortage["source_row"] == 11  # line 11 of the file

    payment = await client.get("/v1/payments/P1001", headers=account.headers())
    assert payment.status_code == 200
    assert Decimal(payment.json()["amount"]) == remit.payment_total
    assert len(payment.json()["lines"]) == remit.lines
    invoice = await client.get("/v1/invoices/1000", headers=account.headers())
    assert invoice.status_code == 200
    detail = invoice.json()
    # invoice 1000: invoiced, paid net of the 2% terms discount, short-claimed 150.25, then reversed: balance 0
    assert sorted(e["entry_type"] for e in detail["entries"]) == [
        "invoice",
        "payment",
        "shortage_claim",
        "shortage_reversal",
        "terms_discount",
    ]
    assert Decimal(detail["balance"]) == 0
    assert detail["source"] == "remittance"


@pytest.mark.parametrize(
    ("variant", "expected_encoding", "expected_format"),
    [
        ({"headers": "US", "date_format": "MMM d, yyyy", "encoding": "utf-8"}, "utf-8", "MMM d, yyyy"),
        ({"headers": "US", "date_format": "dd-MMM-yyyy", "encoding": "utf-8-sig"}, "utf-8-sig", "dd-MMM-yyyy"),
        ({"headers": "IN", "date_format": "dd/MM/yyyy", "encoding": "utf-16", "symbol": "₹"}, "utf-16", "dd/MM/yyyy"),
        (
            {"headers": "US", "date_format": "MM/dd/yyyy", "encoding": "cp1252", "symbol": "£", "currency": "GBP"},
            "cp1252",
            "MM/dd/yyyy",
        ),
        ({"headers": "JP", "date_format": "yyyy-MM-dd", "encoding": "utf-8", "currency": "JPY"}, "utf-8", "yyyy-MM-dd"),
        (
            {"headers": "DE", "date_format": "dd/MM/yyyy", "encoding": "cp1252", "eu": True, "currency": "EUR"},
            "cp1252",
            "dd/MM/yyyy",
        ),
    ],
)
async def test_every_remittance_variant_loads_the_same_amounts(
    run_import: RunImport,
    client: httpx.AsyncClient,
    account: Tenant,
    variant: dict[str, Any],
    expected_encoding: str,
    expected_format: str,
) -> None:
    remit = files.remittance(
        headers=variant["headers"],
        date_format=variant["date_format"],
        currency=variant.get("currency", "USD"),
        eu_numbers=variant.get("eu", False),
        symbol=variant.get("symbol", ""),
    )
    text = files.to_csv(remit.rows, delimiter=";" if variant.get("eu") else ",")
    content = text.encode("utf-8-sig" if variant["encoding"] == "utf-8-sig" else variant["encoding"])
    imp = await run_import(content, "remittance")
    assert imp["status"] == "succeeded", imp
    assert (imp["encoding"], imp["date_format"]) == (expected_encoding, expected_format)
    entries = await all_entries(client, account)
    assert total(entries, "invoice") == remit.invoices_total
    assert total(entries, "payment") == -remit.paid_total
    assert {e["currency"] for e in entries} == {variant.get("currency", "USD")}


async def test_remittance_xlsx_with_stacked_sections(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    remit = files.remittance(date_format="yyyy-MM-dd")
    imp = await run_import(files.to_xlsx(remit.rows), "remittance", filename="remit.xlsx")
    assert imp["status"] == "succeeded", (imp["error"], imp["row_errors"])
    assert imp["detected_format"] == "xlsx"
    entries = await all_entries(client, account)
    assert total(entries, "invoice") == remit.invoices_total
    assert total(entries) == remit.invoices_total - remit.paid_total - remit.discount_total + remit.deductions_total


async def test_remittance_without_payments_section_takes_payment_from_lines(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    remit = files.remittance(with_payments_section=False)
    imp = await run_import(files.to_csv(remit.rows).encode(), "remittance")
    assert imp["status"] == "succeeded", imp
    payment = (await client.get("/v1/payments/P1001", headers=account.headers())).json()
    assert payment["amount"] is None and len(payment["lines"]) == remit.lines


async def test_chargebacks_uk_spelling_and_unknown_columns_kept_raw(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    rows, charged = files.chargebacks(uk=True)
    imp = await run_import(files.to_csv(rows).encode(), "chargebacks")
    assert imp["status"] == "succeeded", imp
    entries = await all_entries(client, account, entry_type="chargeback")
    assert total(entries) == -charged
    first = next(e for e in entries if e["reference"] == "ISSUE-0")
    assert (first["po_number"], first["asin"], first["vendor_code"], first["quantity"]) == (
        "PO00000",
        "B000000000",
        "ACME1",
        1,
    )
    assert first["occurred_on"] == "2026-02-03" and first["due_on"] == "2026-03-05"
    assert first["raw"] == {"Notes": "kept"}
    assert first["currency"] == "USD"  # from the $ of the amounts


async def test_payables_after_a_title_line(run_import: RunImport, client: httpx.AsyncClient, account: Tenant) -> None:
    rows, expected = files.payables()
    imp = await run_import(files.to_csv(rows).encode(), "payables", store_id=await _store(client, account))
    assert imp["status"] == "succeeded", imp
    entries = await all_entries(client, account)
    assert total(entries) == expected
    assert by_type(entries) == Counter(shortage_claim=1, price_claim=1, chargeback=1)


async def test_the_same_deduction_in_payables_and_remittance_is_one_entry(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    rows, _ = files.payables()
    await run_import(files.to_csv(rows).encode(), "payables", store_id=await _store(client, account))
    remit = files.remittance(start=2001, invoices=2)
    await run_import(files.to_csv(remit.rows).encode(), "remittance")
    claims = await all_entries(client, account, entry_type="shortage_claim")
    assert [c["reference"] for c in claims] == ["2001SC"]
    assert claims[0]["amount"] == "-1000.0000"  # the first source wins; the ledger is append-only


async def test_coop_and_returns(run_import: RunImport, client: httpx.AsyncClient, account: Tenant) -> None:
    rows, expected = files.coop()
    imp = await run_import(files.to_csv(rows).encode(), "coop")
    assert imp["status"] == "succeeded", imp
    rows2, expected2 = files.returns()
    imp2 = await run_import(files.to_csv(rows2).encode(), "returns")
    assert imp2["status"] == "succeeded", imp2
    assert total(await all_entries(client, account, entry_type="coop")) == expected
    returns = await all_entries(client, account, entry_type="return")
    assert total(returns) == expected2
    # returns carry no date: the day of the upload stands in
    assert all(e["occurred_on"] for e in returns)


async def test_erp_invoices_link_to_stores_by_code_and_vendor_code(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    store_id = await _store(client, account)
    rows, expected = files.erp_invoices(["E-1", "E-2"], store_code="NYC-01")
    imp = await run_import(files.to_csv(rows).encode(), "invoices")
    assert imp["status"] == "succeeded", imp
    rows2, _ = files.erp_invoices(["E-3"])
    await run_import(files.to_csv(rows2).encode(), "invoices")
    invoices = (await client.get("/v1/invoices", headers=account.headers())).json()["data"]
    assert {i["invoice_number"]: i["store_id"] for i in invoices} == {"E-1": store_id, "E-2": store_id, "E-3": store_id}
    assert {i["due_on"] for i in invoices} == {"2026-03-02"}
    entries = await all_entries(client, account, store_id=store_id, invoice_number="E-1")
    assert [e["amount"] for e in entries] == ["500.1000"]
    assert total(await all_entries(client, account, entry_type="invoice")) == expected + Decimal("500.10")


async def test_an_unknown_store_code_is_a_row_error(run_import: RunImport) -> None:
    rows, _ = files.erp_invoices(["E-1"], store_code="NOPE")
    imp = await run_import(files.to_csv(rows).encode(), "invoices")
    assert imp["status"] == "failed"
    assert imp["row_errors"] == [
        {"row": 2, "column": "store_code", "value": "NOPE", "reason": "no store with this code"}
    ]


async def test_reimport_and_overlapping_import_add_nothing_twice(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    january = files.remittance(payment="P1", invoices=4, start=100)
    first = await run_import(files.to_csv(january.rows).encode(), "remittance")
    before = await all_entries(client, account)
    # same rows in another file (a different download: a trailing note changes its hash)
    again = await run_import((files.to_csv(january.rows) + "\r\n").encode(), "remittance")
    assert again["id"] != first["id"]
    assert (again["status"], again["rows_loaded"], again["rows_duplicate"]) == ("succeeded", 0, january.lines + 1)
    assert len(await all_entries(client, account)) == len(before)
    # an overlapping file: the same payment P1 lines plus a second payment
    february = files.remittance(payment="P2", invoices=2, start=200)
    overlap_rows = january.rows[4:] + february.rows[4:]  # lines only, both payments
    overlap = await run_import(files.to_csv([january.rows[3], *overlap_rows]).encode(), "remittance")
    assert overlap["status"] == "succeeded", overlap
    assert (overlap["rows_duplicate"], overlap["rows_loaded"]) == (january.lines, february.lines)
    after = await all_entries(client, account)
    # new: 2 invoices (invoice, payment, terms discount each) and february's own claims 200SC, 200SCR, 201PC;
    # the documents both payments name (the chargeback, co-op, provision, ...) stay one entry each
    assert len(after) == len(before) + 2 * 3 + 3


async def test_entries_get_time_ordered_ids_so_a_later_import_appends_to_the_indexes(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    """Version 7 ids (``acorn_uuid7()``): a later load's entries sort after an earlier one's in every index keyed
    by the entry id (the ledger's key, the journal key of each entry), instead of landing on random pages."""
    first = await run_import(
        files.to_csv(files.remittance(payment="P1", invoices=3, start=100).rows).encode(), "remittance"
    )
    second = await run_import(
        files.to_csv(files.remittance(payment="P2", invoices=3, start=200).rows).encode(), "remittance"
    )
    assert first["status"] == second["status"] == "succeeded"
    entries = await all_entries(client, account)
    ids = {
        imp["id"]: [uuid.UUID(e["id"]) for e in entries if e["source_import_id"] == imp["id"]]
        for imp in (first, second)
    }
    assert ids[first["id"]] and ids[second["id"]]
    assert {i.version for i in ids[first["id"]] + ids[second["id"]]} == {7}
    assert max(ids[first["id"]]) < min(ids[second["id"]])


async def test_import_records_its_event_and_asks_for_cases_and_matching(
    run_import: RunImport, session: AsyncSession, account: Tenant, redis: ArqRedis
) -> None:
    imp = await run_import(files.to_csv(files.remittance().rows).encode(), "remittance")
    events = (await session.scalars(select(Event).where(Event.account_id == account.id))).all()
    assert [(e.type, e.data["id"]) for e in events] == [("import.succeeded", imp["id"])]
    queued = {(j.function, tuple(j.args)) for j in await redis.queued_jobs()}
    assert ("open_refund_cases", (str(account.id), imp["id"])) in queued
    assert ("match_invoices", (str(account.id), imp["id"])) in queued


async def test_another_accounts_import_is_not_found(
    upload: Upload, client: httpx.AsyncClient, other_account: Tenant
) -> None:
    r = await upload(files.to_csv(files.remittance().rows).encode(), "remittance")
    assert (await client.get(f"/v1/imports/{r.json()['id']}", headers=other_account.headers())).status_code == 404
    listed = await client.get("/v1/imports", headers=other_account.headers())
    assert listed.json()["data"] == []


async def test_a_read_only_key_cannot_upload(upload: Upload, account: Tenant) -> None:
    r = await upload(b"x", "remittance", tenant=Tenant(account.id, account.keys["viewer"], account.keys))
    assert r.status_code == 403


async def _store(client: httpx.AsyncClient, account: Tenant) -> str:
    r = await client.post(
        "/v1/stores",
        json={
            "code": "NYC-01",
            "name": "New York DC",
            "region": "NA",
            "marketplace": "US",
            "country": "US",
            "currency": "USD",
            "timezone": "America/New_York",
            "vendor_codes": ["ACME1"],
        },
        headers=account.headers(),
    )
    assert r.status_code == 201, r.text
    store_id: str = r.json()["id"]
    return store_id


_ = codecs
