"""The quote CSV import is set-based and parses off the event loop (issue 12).

It used to refresh every new quote (a query per row, while holding locks) and to parse a 10 MB file on the
event loop.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from acorn_api.quotes import csv_io
from tests.quotes.helpers import Quotes

HEADER = "asin,store_code,currency,cost_price,effective_from,reason\n"


def _file(rows: int) -> bytes:
    lines = [f"B0SETB0001,SET-01,USD,{10 + i}.25,2030-01-{1 + i % 28:02d},row {i}\n" for i in range(rows)]
    return (HEADER + "".join(lines)).encode()


async def _import(q: Quotes, raw: bytes) -> Any:
    return await q.client.post(
        "/v1/quotes/imports", content=raw, headers={**q.as_("purchasing"), "Content-Type": "text/csv"}
    )


async def test_the_number_of_statements_does_not_grow_with_the_rows(q: Quotes, engine: AsyncEngine) -> None:
    await q.item(asin="B0SETB0001", vendor_sku="SET-1")
    await q.store("SET-01")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    counts = []
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for rows in (2, 2, 120):  # the first warms the credential cache
            statements.clear()
            r = await _import(q, _file(rows))
            assert r.status_code == 201, r.text
            assert r.json()["created"] == rows
            counts.append(len(statements))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert counts[1] == counts[2], f"statements for 2 rows vs 120 rows: {counts[1:]}"


async def test_imported_quotes_are_complete(q: Quotes) -> None:
    await q.item(asin="B0SETB0001", vendor_sku="SET-1")
    await q.store("SET-01")
    r = await _import(q, _file(3))
    ids = r.json()["quote_ids"]
    got = await q.client.get(f"/v1/quotes/{ids[1]}", headers=q.as_("viewer"))
    assert got.status_code == 200
    body = got.json()
    assert (body["status"], body["version"], Decimal(body["cost_price"])) == ("draft", 1, Decimal("11.25"))
    assert body["reason"] == "row 1"
    timeline = await q.client.get(f"/v1/quotes/{ids[2]}/events", headers=q.as_("viewer"))
    assert [e["action"] for e in timeline.json()["data"]] == ["created"]


async def test_parsing_runs_off_the_event_loop(q: Quotes, monkeypatch: pytest.MonkeyPatch) -> None:
    await q.item(asin="B0SETB0001", vendor_sku="SET-1")
    await q.store("SET-01")
    threads: list[int] = []
    real = csv_io.read_rows

    def spy(text: str) -> list[csv_io.Row]:
        threads.append(threading.get_ident())
        return real(text)

    monkeypatch.setattr(csv_io, "read_rows", spy)
    r = await _import(q, _file(2))
    assert r.status_code == 201
    assert threads and threads[0] != threading.get_ident()


async def test_a_file_over_the_import_limit_is_refused(q: Quotes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_io, "MAX_IMPORT_BYTES", 1000)
    r = await _import(q, _file(40))
    assert r.status_code == 422
    assert r.json()["type"].endswith("/csv-too-large")
