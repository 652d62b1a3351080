"""Reading the ledger: filters, cursor pages, the CSV export, invoices and payments, tenant scope."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import httpx
import pytest

from tests.conftest import Tenant
from tests.ledger import files
from tests.ledger.conftest import RunImport, all_entries


@pytest.fixture
async def loaded(run_import: RunImport) -> dict[str, object]:
    imp = await run_import(files.to_csv(files.remittance(invoices=12).rows).encode(), "remittance")
    assert imp["status"] == "succeeded"
    rows, _ = files.chargebacks(count=3)
    assert (await run_import(files.to_csv(rows).encode(), "chargebacks"))["status"] == "succeeded"
    return imp


async def test_filters_narrow_the_entries(
    loaded: dict[str, object], client: httpx.AsyncClient, account: Tenant
) -> None:
    everything = await all_entries(client, account)
    assert len(everything) == 12 * 3 + 9 + 3
    chargebacks = await all_entries(client, account, entry_type="chargeback")
    assert len(chargebacks) == 4  # one from the remittance, three from the chargebacks report
    assert [e["po_number"] for e in await all_entries(client, account, po_number="PO00001")] == ["PO00001"]
    assert len(await all_entries(client, account, vendor_code="ACME1")) == 3
    assert {e["entry_type"] for e in await all_entries(client, account, invoice_number="1000")} == {
        "invoice",
        "payment",
        "terms_discount",
        "shortage_claim",
        "shortage_reversal",
    }
    assert len(await all_entries(client, account, payment_number="P1001")) == 12 * 3 + 9
    assert len(await all_entries(client, account, import_id=loaded["id"])) == 12 * 3 + 9
    big = await all_entries(client, account, amount_min="1000", amount_max="1100")
    assert big and all(Decimal("1000") <= Decimal(e["amount"]) <= Decimal("1100") for e in big)
    feb = await all_entries(client, account, occurred_from="2026-02-04", occurred_to="2026-02-05")
    assert sorted(e["reference"] for e in feb) == ["ISSUE-1", "ISSUE-2"]


async def test_cursor_pages_cover_everything_once(
    loaded: dict[str, object], client: httpx.AsyncClient, account: Tenant
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/ledger/entries", params=params, headers=account.headers())).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == len(await all_entries(client, account))


async def test_csv_export_streams_every_matching_entry(
    loaded: dict[str, object], client: httpx.AsyncClient, account: Tenant
) -> None:
    r = await client.get(
        "/v1/ledger/entries", params={"format": "csv", "entry_type": "payment"}, headers=account.headers()
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 12
    assert sum(Decimal(row["amount"]) for row in rows) == sum(
        Decimal(e["amount"]) for e in await all_entries(client, account, entry_type="payment")
    )


async def test_invoices_list_and_detail(loaded: dict[str, object], client: httpx.AsyncClient, account: Tenant) -> None:
    listed = (await client.get("/v1/invoices", params={"limit": 200}, headers=account.headers())).json()["data"]
    assert len(listed) == 12 and {i["source"] for i in listed} == {"remittance"}
    detail = (await client.get("/v1/invoices/1001", headers=account.headers())).json()
    # invoice 1001: invoiced, paid net of its terms discount, and a price claim of 40.10 still open
    assert Decimal(detail["balance"]) == Decimal("-40.10")


async def test_another_accounts_ledger_is_invisible(
    loaded: dict[str, object], client: httpx.AsyncClient, other_account: Tenant
) -> None:
    assert (await client.get("/v1/invoices/1000", headers=other_account.headers())).status_code == 404
    assert (await client.get("/v1/payments/P1001", headers=other_account.headers())).status_code == 404
    assert (await client.get("/v1/ledger/entries", headers=other_account.headers())).json()["data"] == []
    assert (await client.get("/v1/invoices", headers=other_account.headers())).json()["data"] == []


async def test_a_bad_filter_is_422_naming_it(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/ledger/entries", params={"amount_min": "abc"}, headers=account.headers())
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["query", "amount_min"]


async def test_control_characters_in_filters_and_paths_are_422(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/ledger/entries", params={"vendor_code": "A\x00B"}, headers=account.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "vendor_code"]
    r = await client.get("/v1/invoices/A%00B", headers=account.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["path", "invoice_number"]
    r = await client.post(
        "/v1/import-mappings",
        json={"report_type": "returns", "name": "x\x00", "columns": {"A": "request_id"}},
        headers=account.headers(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "name"]


async def test_dates_and_booleans_are_not_coerced_from_numbers(client: httpx.AsyncClient, account: Tenant) -> None:
    r = await client.get("/v1/ledger/entries", params={"occurred_to": "0"}, headers=account.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "occurred_to"]
    r = await client.post(
        "/v1/import-mappings",
        json={"report_type": "returns", "name": "x", "columns": {"A": "request_id"}, "is_default": 0},
        headers=account.headers(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "is_default"]
