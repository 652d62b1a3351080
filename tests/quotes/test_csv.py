"""CSV import (all rows or none, row-level errors) and the streamed price-list export."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from acorn_api.quotes.models import Quote
from tests.quotes.helpers import Quotes, future, iso

HEADER = "asin,store_code,region,marketplace,currency,cost_price,effective_from,effective_to,reason\n"


async def _post_csv(q: Quotes, body: bytes | str, *, multipart: bool = False):
    data = body.encode() if isinstance(body, str) else body
    h = q.as_("purchasing")
    if multipart:
        return await q.client.post("/v1/quotes/imports", files={"file": ("quotes.csv", data, "text/csv")}, headers=h)
    return await q.client.post("/v1/quotes/imports", content=data, headers={**h, "Content-Type": "text/csv"})


async def _count(session, tenant) -> int:
    return int(await session.scalar(select(func.count()).select_from(Quote).where(Quote.account_id == tenant.id)))


async def _fixtures(q: Quotes) -> tuple[dict, dict]:
    return await q.item(asin="B0CSV00001", vendor_sku="CSV-1"), await q.store("NYC-01")


async def test_a_good_file_creates_drafts(q: Quotes, session):
    await _fixtures(q)
    body = (
        HEADER
        + "B0CSV00001,NYC-01,,,USD,12.5,2030-01-01,,spring list\nB0CSV00001,,NA,US,USD,11,2030-01-01,2030-06-01,\n"
    )
    r = await _post_csv(q, body)
    assert r.status_code == 201, r.text
    assert (r.json()["rows"], r.json()["created"]) == (2, 2)
    listed = await q.client.get("/v1/quotes", params={"status": "draft"}, headers=q.as_("viewer"))
    assert sorted(x["scope_type"] for x in listed.json()["data"]) == ["marketplace", "store"]


async def test_multipart_upload_with_a_bom_and_vendor_sku(q: Quotes):
    await _fixtures(q)
    body = (
        "\ufeffvendor_sku,store_code,currency,cost_price,effective_from\nCSV-1,NYC-01,USD,9.99,2030-01-01T00:00:00Z\n"
    )
    r = await _post_csv(q, body.encode("utf-8"), multipart=True)
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 1


async def test_a_windows_1252_file_is_refused_clearly(q: Quotes):
    await _fixtures(q)
    body = (HEADER + "B0CSV00001,NYC-01,,,USD,12.5,2030-01-01,,Café\n").encode("cp1252")
    r = await _post_csv(q, body)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/csv-encoding")
    assert "line 2" in r.json()["detail"] and "UTF-8" in r.json()["detail"]


async def test_a_utf16_file_is_refused_clearly(q: Quotes):
    r = await _post_csv(q, HEADER.encode("utf-16"))
    assert r.status_code == 422
    assert "UTF-16" in r.json()["detail"]


async def test_missing_columns_are_named(q: Quotes):
    r = await _post_csv(q, "asin,store_code,currency\nB0CSV00001,NYC-01,USD\n")
    assert r.status_code == 422
    assert r.json()["type"].endswith("/csv-columns")
    assert "cost_price" in r.json()["detail"] and "effective_from" in r.json()["detail"]


async def test_a_renamed_column_is_refused(q: Quotes):
    r = await _post_csv(q, "asin,store,currency,cost_price,effective_from\n")
    assert r.status_code == 422
    assert "Unknown column(s): store" in r.json()["detail"]


async def test_an_empty_file_is_refused(q: Quotes):
    r = await _post_csv(q, "")
    assert r.status_code == 422
    assert r.json()["type"].endswith("/csv-empty")


async def test_bad_rows_are_all_reported_and_nothing_is_created(q: Quotes, session):
    await _fixtures(q)
    body = (
        HEADER
        + "B0CSV00001,NYC-01,,,USD,12.5,2030-01-01,,ok\n"
        + 'B0CSV00001,NYC-01,,,USD,"1,234.5",2030-01-01,,thousands\n'
        + 'B0CSV00001,NYC-01,,,USD,"1.234,5",2030-01-01,,comma\n'
        + "B0NOTTHERE,NYC-01,,,USD,1,2030-01-01,,unknown item\n"
        + "B0CSV00001,NYC-01,,,EUR,1,31/01/2030,,two problems\n"
    )
    before = await _count(session, q.tenant)
    r = await _post_csv(q, body)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/csv-rows-invalid")
    errors = [(e["row"], e["column"]) for e in r.json()["row_errors"]]
    assert errors == [(3, "cost_price"), (4, "cost_price"), (5, "asin"), (6, "effective_from")]
    reasons = {e["row"]: e["reason"] for e in r.json()["row_errors"]}
    assert "thousands separator" in reasons[3] and "decimal comma" in reasons[4]
    assert await _count(session, q.tenant) == before


async def test_a_currency_that_does_not_match_the_store_is_a_row_error(q: Quotes):
    await _fixtures(q)
    r = await _post_csv(q, HEADER + "B0CSV00001,NYC-01,,,EUR,1,2030-01-01,,\n")
    assert r.json()["row_errors"] == [{"row": 2, "column": "currency", "reason": "store NYC-01 prices in USD, not EUR"}]


async def test_a_short_row_is_a_row_error(q: Quotes):
    await _fixtures(q)
    r = await _post_csv(q, HEADER + "B0CSV00001,NYC-01\n")
    assert r.json()["row_errors"][0]["reason"] == "has 2 fields; the header has 9"


async def test_text_plain_json_is_415(q: Quotes):
    r = await q.client.post("/v1/quotes/imports", json={"x": 1}, headers=q.as_("purchasing"))
    assert r.status_code == 415


async def test_export_streams_the_effective_price_list_of_a_store(q: Quotes):
    item, store = await _fixtures(q)
    other = await q.item(asin="B0CSV00002", vendor_sku="CSV-2")
    await q.approved(item, store_id=store["id"], cost_price="12.5", effective_from=iso(future(1)))
    await q.approved(other, region="NA", cost_price="3", effective_from=iso(future(1)))
    r = await q.client.get(
        "/v1/quotes/export",
        params={"format": "csv", "store_id": store["id"], "at": iso(future(2))},
        headers=q.as_("viewer"),
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["asin"], x["cost_price"], x["source"]) for x in rows] == [
        ("B0CSV00001", "12.5000", "store"),
        ("B0CSV00002", "3.0000", "region"),
    ]


async def test_export_of_another_accounts_store_is_404(q: Quotes, client, other_account):
    theirs = await Quotes(client, other_account).store("THEIRS")
    r = await q.client.get("/v1/quotes/export", params={"store_id": theirs["id"]}, headers=q.as_("viewer"))
    assert r.status_code == 404


async def test_export_times_are_rfc3339_utc(q: Quotes):
    item, store = await _fixtures(q)
    start = future(1).replace(microsecond=250000)
    quote = await q.approved(item, store_id=store["id"], effective_from=iso(start), effective_to=iso(future(9)))
    r = await q.client.get(
        "/v1/quotes/export", params={"store_id": store["id"], "at": iso(future(2))}, headers=q.as_("viewer")
    )
    row = next(csv.DictReader(io.StringIO(r.text)))
    assert (row["effective_from"], row["effective_to"]) == (quote["effective_from"], quote["effective_to"])
    assert row["effective_from"].endswith(".250000Z")
    assert (row["quote_id"], row["list_price"]) == (quote["id"], "")
