"""Idempotency of the CSV import hashes the uploaded file itself (issue 12).

The route reads the upload before the idempotency hash is taken; the hash used to cover zero bytes, so a
different file sent with the same key replayed the first answer and the second file was never imported.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.quotes.models import Quote
from tests.quotes.helpers import Quotes

HEADER = "asin,store_code,region,marketplace,currency,cost_price,effective_from,effective_to,reason\n"
FIRST = HEADER + "B0IDEM0001,IDEM-01,,,USD,12.50,2030-01-01,,first file\n"
SECOND = HEADER + "B0IDEM0001,IDEM-01,,,USD,13.75,2030-02-01,,second file\nB0IDEM0001,,NA,US,USD,11,2030-01-01,,\n"


async def _upload(q: Quotes, body: str, key: str):
    return await q.client.post(
        "/v1/quotes/imports",
        files={"file": ("quotes.csv", body.encode(), "text/csv")},
        headers={**q.as_("purchasing"), "Idempotency-Key": key},
    )


async def _count(session: AsyncSession, q: Quotes) -> int:
    query = select(func.count()).select_from(Quote).where(Quote.account_id == q.tenant.id)
    return int(await session.scalar(query) or 0)


async def test_another_file_with_the_same_key_is_refused_not_replayed(q: Quotes, session: AsyncSession) -> None:
    await q.item(asin="B0IDEM0001", vendor_sku="IDEM-1")
    await q.store("IDEM-01")
    first = await _upload(q, FIRST, "import-1")
    assert first.status_code == 201, first.text
    second = await _upload(q, SECOND, "import-1")
    assert second.status_code == 422, second.text
    assert second.json()["type"].endswith("/idempotency-key-reused")
    assert "idempotency-replayed" not in second.headers
    assert await _count(session, q) == 1


async def test_the_same_file_with_the_same_key_is_replayed(q: Quotes, session: AsyncSession) -> None:
    await q.item(asin="B0IDEM0001", vendor_sku="IDEM-1")
    await q.store("IDEM-01")
    first = await _upload(q, SECOND, "import-2")
    again = await _upload(q, SECOND, "import-2")
    assert again.status_code == 201
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
    assert await _count(session, q) == 2
