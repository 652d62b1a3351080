"""Invoice line files (``invoice_number, asin, quantity, unit_cost``): loaded through the same staging path,
shown on ``GET /v1/invoices/{invoice_number}``, idempotent, per account, and never money of their own."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.ledger import files
from tests.ledger.conftest import RunImport, all_entries

LINES = [
    ["invoice_number", "asin", "quantity", "unit_cost"],
    ["E-1", "B000000001", "3", "10.25"],
    ["E-1", "B000000002", "1", "$1,200.00"],
    ["E-2", "B000000001", "12", "0.3333"],
]


async def _invoice(client: httpx.AsyncClient, tenant: Tenant, number: str) -> dict[str, Any]:
    r = await client.get(f"/v1/invoices/{number}", headers=tenant.headers())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_line_file_after_its_invoices_shows_lines_on_the_invoice(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    invoices, _ = files.erp_invoices(["E-1", "E-2"])
    assert (await run_import(files.to_csv(invoices).encode(), "invoices"))["status"] == "succeeded"
    entries_before = await all_entries(client, account)

    imp = await run_import(files.to_csv(LINES).encode(), "invoices")
    assert (imp["status"], imp["rows_total"], imp["rows_loaded"], imp["rows_duplicate"]) == ("succeeded", 3, 3, 0)

    e1 = await _invoice(client, account, "E-1")
    lines = [
        (x["asin"], x["quantity"], x["unit_cost"], x["amount"], x["currency"], x["source_row"]) for x in e1["lines"]
    ]
    assert lines == [
        ("B000000001", 3, "10.2500", "30.7500", "USD", 2),
        ("B000000002", 1, "1200.0000", "1200.0000", "USD", 3),
    ]
    assert {x["source_import_id"] for x in e1["lines"]} == {imp["id"]}
    e2 = await _invoice(client, account, "E-2")
    assert [(x["quantity"], x["amount"]) for x in e2["lines"]] == [(12, "3.9996")]
    # lines are detail of the invoice, not money: the ledger and the balance are unchanged
    assert len(await all_entries(client, account)) == len(entries_before)
    assert Decimal(e1["balance"]) == Decimal("500.10")

    # the same lines again (another download: one more trailing line break) add nothing
    again = await run_import((files.to_csv(LINES) + "\r\n").encode(), "invoices")
    assert (again["status"], again["rows_loaded"], again["rows_duplicate"]) == ("succeeded", 0, 3)
    assert len((await _invoice(client, account, "E-1"))["lines"]) == 2


async def test_lines_before_their_invoice_with_aliases_and_their_own_currency(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    rows = [
        ["Invoice Number", "ASIN", "Qty", "Unit Cost", "Currency", "Warehouse note"],
        ["E-7", "B000000009", "2", "5.5", "eur", "dock 4"],
        ["E-7", "B000000009", "2", "5.5", "EUR", ""],  # the same ASIN twice on one invoice: two lines
    ]
    imp = await run_import(files.to_csv(rows).encode(), "invoice_lines")
    assert (imp["status"], imp["rows_loaded"]) == ("succeeded", 2), imp
    assert (await client.get("/v1/invoices/E-7", headers=account.headers())).status_code == 404  # no invoice yet

    invoices, _ = files.erp_invoices(["E-7"])
    await run_import(files.to_csv(invoices).encode(), "invoices")
    e7 = await _invoice(client, account, "E-7")
    assert [(x["amount"], x["currency"]) for x in e7["lines"]] == [("11.0000", "EUR"), ("11.0000", "EUR")]
    # an overlapping line file (the first line again, plus a new ASIN) adds only the new line
    overlap = [rows[0], rows[1], ["E-7", "B00000000X", "1", "1", "EUR", ""]]
    imp2 = await run_import(files.to_csv(overlap).encode(), "invoice_lines")
    assert (imp2["rows_loaded"], imp2["rows_duplicate"]) == (1, 1)
    assert len((await _invoice(client, account, "E-7"))["lines"]) == 3


async def test_invoices_and_their_lines_stacked_in_one_file(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    invoices, _ = files.erp_invoices(["E-1", "E-2"])
    imp = await run_import(files.to_csv([*invoices, [], *LINES]).encode(), "invoices")
    assert (imp["status"], imp["rows_total"], imp["rows_loaded"]) == ("succeeded", 5, 5), imp
    assert len((await _invoice(client, account, "E-1"))["lines"]) == 2
    assert len(await all_entries(client, account, entry_type="invoice")) == 2


async def test_bad_line_rows_are_reported_and_nothing_is_loaded(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    rows = [
        LINES[0],
        ["E-1", "B000000001", "1.5", "10"],
        ["E-1", "", "1", "10"],
        ["E-1", "B000000003", "2", "-4"],
        ["E-1", "B000000004", "2", "ten"],
        ["E-1", "B000000005", "2", "3"],
    ]
    imp = await run_import(files.to_csv(rows).encode(), "invoice_lines")
    assert imp["status"] == "failed"
    assert [(e["row"], e["column"], e["reason"]) for e in imp["row_errors"]] == [
        (2, "quantity", "not a whole number"),
        (3, "asin", "required value is empty"),
        (4, "unit_cost", "a unit cost cannot be negative"),
        (5, "unit_cost", "not an amount"),
    ]
    invoices, _ = files.erp_invoices(["E-1"])
    await run_import(files.to_csv(invoices).encode(), "invoices")
    assert (await _invoice(client, account, "E-1"))["lines"] == []
    # with reject_file_on_errors=false the good row loads
    partial = await run_import((files.to_csv(rows) + "\r\n").encode(), "invoice_lines", reject_file_on_errors=False)
    assert (partial["status"], partial["rows_loaded"], partial["rows_rejected"]) == ("succeeded", 1, 4)
    assert [x["asin"] for x in (await _invoice(client, account, "E-1"))["lines"]] == ["B000000005"]


async def test_a_line_file_without_unit_cost_names_the_missing_column(run_import: RunImport) -> None:
    rows = [["invoice_number", "asin", "quantity"], ["E-1", "B000000001", "3"]]
    imp = await run_import(files.to_csv(rows).encode(), "invoice_lines")
    assert imp["status"] == "failed"
    assert imp["error"]["code"] == "missing_columns"
    assert imp["error"]["missing_columns"] == ["Unit Cost"]


async def test_another_accounts_lines_are_not_shown(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant, other_account: Tenant
) -> None:
    invoices, _ = files.erp_invoices(["E-1"])
    await run_import(files.to_csv(invoices).encode(), "invoices")
    await run_import(files.to_csv(LINES).encode(), "invoices", tenant=other_account)
    assert (await _invoice(client, account, "E-1"))["lines"] == []
    assert (await client.get("/v1/invoices/E-1", headers=other_account.headers())).status_code == 404


async def test_an_xlsx_line_file_with_numeric_cells(
    run_import: RunImport, client: httpx.AsyncClient, account: Tenant
) -> None:
    invoices, _ = files.erp_invoices(["E-1"])
    await run_import(files.to_csv(invoices).encode(), "invoices")
    rows: list[list[Any]] = [LINES[0], ["E-1", "B000000001", 3, 10.25], ["E-1", "B000000002", 1, 1200]]
    imp = await run_import(files.to_xlsx(rows), "invoices", filename="lines.xlsx")
    assert (imp["status"], imp["detected_format"], imp["rows_loaded"]) == ("succeeded", "xlsx", 2), imp
    e1 = await _invoice(client, account, "E-1")
    assert [(x["quantity"], x["unit_cost"], x["amount"]) for x in e1["lines"]] == [
        (3, "10.2500", "30.7500"),
        (1, "1200.0000", "1200.0000"),
    ]
