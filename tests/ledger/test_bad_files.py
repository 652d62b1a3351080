"""DESIGN.md §7: each malformed file gets a clear file- or row-level error and leaves nothing behind."""

from __future__ import annotations

from typing import Any

import httpx
from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.core.db import Resources
from acorn_api.ledger.models import Invoice, LedgerEntry, Payment, PaymentLine
from acorn_api.ledger.parsing import clean_file_name
from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.conftest import Tenant
from tests.ledger import files
from tests.ledger.conftest import RunImport, Upload


async def nothing_stored(session: AsyncSession, account: Tenant) -> bool:
    for model in (LedgerEntry, Payment, PaymentLine, Invoice):
        count = await session.scalar(select(func.count()).select_from(model).where(model.account_id == account.id))
        if count:
            return False
    return True


def remittance_csv(**kwargs: Any) -> str:
    return files.to_csv(files.remittance(**kwargs).rows)


async def test_wrong_encoding_fails_the_file(run_import: RunImport, session: AsyncSession, account: Tenant) -> None:
    content = remittance_csv().encode() + b"P1001,\x81\x8d\x90,Jan 1\r\n"  # bytes neither UTF-8 nor Windows-1252
    imp = await run_import(content, "remittance")
    assert imp["status"] == "failed"
    assert imp["error"]["code"] == "unknown_encoding"
    assert "UTF-8" in imp["error"]["message"]
    assert await nothing_stored(session, account)


async def test_nul_bytes_fail_the_file(run_import: RunImport, session: AsyncSession, account: Tenant) -> None:
    imp = await run_import(remittance_csv().encode() + b"\x00\x01", "remittance")
    assert (imp["status"], imp["error"]["code"]) == ("failed", "nul_bytes")
    assert await nothing_stored(session, account)


async def test_a_bom_does_not_hide_the_first_header(run_import: RunImport) -> None:
    imp = await run_import(b"\xef\xbb\xbf" + remittance_csv().encode(), "remittance")
    assert (imp["status"], imp["encoding"]) == ("succeeded", "utf-8-sig")


async def test_a_file_of_another_report_names_the_missing_columns(
    run_import: RunImport, session: AsyncSession, account: Tenant
) -> None:
    rows, _ = files.chargebacks()
    imp = await run_import(files.to_csv(rows).encode(), "remittance")
    assert imp["status"] == "failed"
    assert imp["error"]["code"] == "missing_columns"
    assert imp["error"]["missing_columns"] == ["Invoice Number", "Invoice Date", "Amount Paid"]
    assert "Invoice Number, Invoice Date, Amount Paid" in imp["error"]["message"]
    assert await nothing_stored(session, account)


async def test_a_renamed_column_fails_until_mapped(
    run_import: RunImport, client: httpx.AsyncClient, session: AsyncSession, account: Tenant
) -> None:
    text = remittance_csv().replace("Amount Paid", "Paid Net Total")
    failed = await run_import(text.encode(), "remittance")
    assert (failed["status"], failed["error"]["missing_columns"]) == ("failed", ["Amount Paid"])
    assert await nothing_stored(session, account)
    mapping = await client.post(
        "/v1/import-mappings",
        json={"report_type": "remittance", "name": "2026 rename", "columns": {"Paid Net Total": "amount_paid"}},
        headers=account.headers(),
    )
    assert mapping.status_code == 201, mapping.text
    # the same file again with the mapping: the failed import is queued again with it
    again = await run_import(text.encode(), "remittance", mapping_id=mapping.json()["id"])
    assert again["id"] == failed["id"]
    assert (again["status"], again["error"], again["mapping_id"]) == ("succeeded", None, mapping.json()["id"])
    # the mapping can be deleted later: the import keeps its results and lets go of it (was a 500: the
    # composite foreign key's ON DELETE SET NULL nulled account_id too; found by stateful fuzzing)
    deleted = await client.delete(f"/v1/import-mappings/{mapping.json()['id']}", headers=account.headers())
    assert (deleted.status_code, deleted.json()["deleted"]) == (200, True), deleted.text
    kept = await client.get(f"/v1/imports/{again['id']}", headers=account.headers())
    assert (kept.status_code, kept.json()["mapping_id"], kept.json()["status"]) == (200, None, "succeeded")


async def test_a_default_mapping_applies_without_mapping_id(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    await client.post(
        "/v1/import-mappings",
        json={
            "report_type": "remittance",
            "name": "d",
            "columns": {"Paid Net Total": "amount_paid"},
            "is_default": True,
        },
        headers=account.headers(),
    )
    imp = await run_import(remittance_csv().replace("Amount Paid", "Paid Net Total").encode(), "remittance")
    assert imp["status"] == "succeeded", imp["error"]


async def test_a_mapping_to_an_unknown_field_is_refused(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.post(
        "/v1/import-mappings",
        json={"report_type": "chargebacks", "name": "x", "columns": {"Charge": "amount_paid"}},
        headers=account.headers(),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "columns"]
    assert "amount_paid" in r.json()["detail"]


async def test_mixed_locale_date_formats_fail_the_file(
    run_import: RunImport, session: AsyncSession, account: Tenant
) -> None:
    rows = files.remittance(date_format="MMM d, yyyy").rows
    rows[5][2] = "2026-01-02"  # one ISO date
    rows[6][2] = "13/01/2026"  # one European date
    imp = await run_import(files.to_csv(rows).encode(), "remittance")
    assert (imp["status"], imp["error"]["code"]) == ("failed", "mixed_date_formats")
    assert await nothing_stored(session, account)


async def test_ambiguous_days_are_reported_not_guessed(
    run_import: RunImport, client: httpx.AsyncClient, session: AsyncSession, account: Tenant
) -> None:
    remit = files.remittance(date_format="dd/MM/yyyy", day=files.date(2026, 1, 5))  # every day ≤ 12
    content = files.to_csv(remit.rows).encode()
    imp = await run_import(content, "remittance")
    assert (imp["status"], imp["error"]["code"]) == ("failed", "ambiguous_dates")
    assert imp["error"]["candidates"] == ["MM/dd/yyyy", "dd/MM/yyyy"]
    assert await nothing_stored(session, account)
    fixed = await run_import(content, "remittance", date_format="dd/MM/yyyy")
    assert (fixed["status"], fixed["date_format"]) == ("succeeded", "dd/MM/yyyy")
    payment = (await client.get("/v1/payments/P1001", headers=account.headers())).json()
    assert payment["payment_date"] == "2026-01-05"


async def test_bad_rows_reject_the_file_by_default_and_are_reported(
    run_import: RunImport, session: AsyncSession, account: Tenant
) -> None:
    rows = files.remittance().rows
    rows[5][8] = "12,34,5"  # Amount Paid
    rows[6][2] = "Feb 30, 2026"  # Invoice Date
    rows[7][1] = ""  # Invoice Number
    imp = await run_import(files.to_csv(rows).encode(), "remittance")
    assert imp["status"] == "failed"
    assert imp["error"]["code"] == "rows_invalid"
    assert imp["rows_rejected"] == 3
    assert imp["row_errors"] == [
        {"row": 6, "column": "Amount Paid", "value": "12,34,5", "reason": "not an amount"},
        {"row": 7, "column": "Invoice Date", "value": "Feb 30, 2026", "reason": "not a date in a supported format"},
        {"row": 8, "column": "Invoice Number", "value": None, "reason": "required value is empty"},
    ]
    assert await nothing_stored(session, account)


async def test_bad_rows_can_be_left_out(run_import: RunImport, client: httpx.AsyncClient, account: Tenant) -> None:
    remit = files.remittance()
    rows = remit.rows
    rows[5][8] = "abc"
    imp = await run_import(files.to_csv(rows).encode(), "remittance", reject_file_on_errors=False)
    assert (imp["status"], imp["rows_rejected"], imp["rows_loaded"]) == ("succeeded", 1, remit.lines)
    assert imp["row_errors"][0]["row"] == 6


async def test_thousands_separators_and_parentheses(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    rows, _ = files.payables()
    rows[3][4] = "($1,234,567.89)"
    rows[4][4] = "$ 2,500.00"
    rows[5][4] = "1.234,50 €"
    imp = await run_import(files.to_csv(rows).encode(), "payables", reject_file_on_errors=False)
    assert imp["status"] == "succeeded", imp
    r = await client.get("/v1/ledger/entries", params={"format": "json"}, headers=account.headers())
    amounts = sorted((e["amount"], e["currency"]) for e in r.json()["data"])
    assert amounts == [("-1234.5000", "EUR"), ("-1234567.8900", "USD"), ("-2500.0000", "USD")]


async def test_an_empty_upload_is_refused(upload: Upload) -> None:
    r = await upload(b"", "remittance")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "file"]


async def test_a_file_of_blank_lines_fails_as_empty(
    run_import: RunImport, session: AsyncSession, account: Tenant
) -> None:
    imp = await run_import(b"\r\n,,,\r\n\r\n", "chargebacks")
    assert (imp["status"], imp["error"]["code"]) == ("failed", "empty_file")
    assert await nothing_stored(session, account)


async def test_a_huge_file_is_413_before_it_is_read(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, account: Tenant
) -> None:
    small = settings.model_copy(update={"max_import_bytes": 2000})
    app = create_app(small, resources=Resources(engine=None, sessionmaker=sessionmaker, redis=redis))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        big = remittance_csv(invoices=200).encode()
        r = await c.post(
            "/v1/imports",
            files={"file": ("big.csv", big)},
            data={"report_type": "remittance"},
            headers=account.headers(),
        )
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/payload-too-large")
        # under the request limit (the multipart envelope allowance) but over the file limit
        just_over = b"x" * 2100
        r2 = await c.post(
            "/v1/imports",
            files={"file": ("b.csv", just_over)},
            data={"report_type": "remittance"},
            headers=account.headers(),
        )
        assert r2.status_code == 413
        listed = await c.get("/v1/imports", headers=account.headers())
        assert listed.json()["data"] == []


async def test_an_xlsx_zip_bomb_is_refused(run_import: RunImport, session: AsyncSession, account: Tenant) -> None:
    imp = await run_import(files.zip_bomb(), "remittance", filename="bomb.xlsx")
    assert (imp["status"], imp["error"]["code"]) == ("failed", "zip_bomb")
    assert "zip bomb" in imp["error"]["message"]
    assert await nothing_stored(session, account)


async def test_a_broken_xlsx_fails_cleanly(run_import: RunImport) -> None:
    imp = await run_import(b"PK\x03\x04" + b"garbage" * 10, "remittance", filename="x.xlsx")
    assert (imp["status"], imp["error"]["code"]) == ("failed", "bad_xlsx")


async def test_a_file_name_with_control_characters_is_cleaned(upload: Upload) -> None:
    r = await upload(remittance_csv().encode(), "remittance", filename="re\x00mit\x07.csv")
    assert r.status_code == 202, r.text
    assert not any(ord(c) < 32 for c in r.json()["file_name"])
    assert clean_file_name("re\x00mit\x07.csv") == "remit.csv"
    assert clean_file_name("\x01") is None
