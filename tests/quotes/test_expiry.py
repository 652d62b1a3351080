from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from acorn_api.quotes import service
from acorn_api.quotes.models import Quote, QuoteEvent
from tests.quotes.helpers import Quotes


async def test_expiry_marks_ended_approvals_and_records_it(q: Quotes, session):
    item = await q.item()
    quote_id = uuid.uuid4()
    now = datetime.now(UTC)
    await session.execute(
        text(
            "INSERT INTO quotes (id, account_id, item_id, scope_type, region, currency, cost_price, effective_from, "
            "effective_to, status) VALUES (:id, :a, :i, 'region', 'NA', 'USD', 1, :f, :t, 'approved')"
        ),
        {"id": quote_id, "a": q.tenant.id, "i": uuid.UUID(item["id"]), "f": now - timedelta(days=2), "t": now},
    )
    assert await service.expire_due(session) >= 1
    assert await service.expire_due(session) == 0
    quote = await session.get(Quote, quote_id)
    assert quote is not None and quote.status == "expired"
    actions = (await session.scalars(select(QuoteEvent.action).where(QuoteEvent.quote_id == quote_id))).all()
    assert actions == ["expired"]
