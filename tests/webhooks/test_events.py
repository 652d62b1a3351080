"""/v1/events: filters, cursor pages, redelivery; retention keeps at least 30 days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from acorn_api.core.time import rfc3339, utcnow
from acorn_api.webhooks import jobs, service
from acorn_api.webhooks.events import EventType
from acorn_api.webhooks.models import Event
from tests.conftest import Tenant
from tests.webhooks.conftest import Receiver, emit, make_endpoint, settle

pytestmark = pytest.mark.committing


async def test_events_are_listed_newest_first_by_type_and_time(
    committing_client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any]
) -> None:
    sm = ctx["sessionmaker"]
    approved = [await emit(sm, tenant.id, EventType.quote_approved) for _ in range(3)]
    middle = utcnow()
    failed = [await emit(sm, tenant.id, EventType.sync_run_failed) for _ in range(2)]
    h = tenant.headers()

    r = await committing_client.get("/v1/events", params={"limit": 2}, headers=h)
    page1 = r.json()
    assert [e["id"] for e in page1["data"]] == [str(failed[1]), str(failed[0])] and page1["has_more"]
    r = await committing_client.get("/v1/events", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=h)
    assert [e["id"] for e in r.json()["data"]] == [str(approved[2]), str(approved[1])]

    r = await committing_client.get("/v1/events", params={"type": "quote.approved"}, headers=h)
    assert [e["id"] for e in r.json()["data"]] == [str(i) for i in reversed(approved)]
    r = await committing_client.get(
        "/v1/events", params=[("type", "quote.approved"), ("type", "sync_run.failed")], headers=h
    )
    assert len(r.json()["data"]) == 5
    r = await committing_client.get("/v1/events", params={"created_after": rfc3339(middle)}, headers=h)
    assert {e["id"] for e in r.json()["data"]} == {str(i) for i in failed}
    r = await committing_client.get("/v1/events", params={"created_before": rfc3339(middle)}, headers=h)
    assert {e["id"] for e in r.json()["data"]} == {str(i) for i in approved}

    r = await committing_client.get("/v1/events", params={"type": "quote.exploded"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "type", 0]
    r = await committing_client.get(
        "/v1/events", params={"created_after": rfc3339(middle), "created_before": rfc3339(middle)}, headers=h
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "created_before"]


async def test_an_event_can_be_redelivered(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    first = await make_endpoint(committing_client, tenant, receiver.url + "/one")
    second = await make_endpoint(committing_client, tenant, receiver.url + "/two")
    event_id = await emit(ctx["sessionmaker"], tenant.id)
    await jobs.deliver_event(ctx, str(tenant.id), str(event_id))
    assert len(receiver.received) == 2

    r = await committing_client.post(
        f"/v1/events/{event_id}/redeliver", json={"endpoint_id": second["id"]}, headers=tenant.headers()
    )
    assert r.status_code == 202, r.text
    assert [d["endpoint_id"] for d in r.json()["deliveries"]] == [second["id"]]
    await settle(ctx, tenant.id)
    assert [x.path for x in receiver.received].count("/hooks/two") == 2

    r = await committing_client.post(f"/v1/events/{event_id}/redeliver", headers=tenant.headers())
    assert r.status_code == 202 and len(r.json()["deliveries"]) == 2
    await settle(ctx, tenant.id)
    assert len(receiver.bodies_for(event_id)) == 5
    assert first["id"]


async def test_redelivery_of_another_accounts_event_is_404(
    committing_client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, ctx: dict[str, Any]
) -> None:
    event_id = await emit(ctx["sessionmaker"], tenant.id)
    r = await committing_client.post(f"/v1/events/{event_id}/redeliver", headers=other_tenant.headers())
    assert r.status_code == 404


async def test_retention_keeps_thirty_days_and_deletes_older(tenant: Tenant, ctx: dict[str, Any]) -> None:
    sm = ctx["sessionmaker"]
    old, recent = await emit(sm, tenant.id), await emit(sm, tenant.id)
    async with sm() as s:
        now = utcnow()
        for event_id, age in ((old, timedelta(days=30, hours=1)), (recent, timedelta(days=29, hours=23))):
            await s.execute(
                update(Event).where(Event.account_id == tenant.id, Event.id == event_id).values(created_at=now - age)
            )
        await s.commit()

    assert await jobs.purge_old_events(ctx) >= 1
    async with sm() as s:
        assert await s.get(Event, (tenant.id, old)) is None
        assert await s.get(Event, (tenant.id, recent)) is not None


def test_retention_cannot_be_set_below_thirty_days(ctx: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from acorn_api.settings import Settings

    with pytest.raises(ValidationError):
        Settings(event_retention_days=29)
    assert service.PURGE_BATCH > 0
