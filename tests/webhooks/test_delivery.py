"""Delivery against a real HTTP receiver: signed, retried with backoff, each attempt recorded once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.core.jobs import job_session
from acorn_api.webhooks import jobs, verify
from acorn_api.webhooks.events import EventType, record
from acorn_api.webhooks.models import Event, WebhookAttempt
from tests.conftest import Tenant
from tests.webhooks.conftest import Receiver, emit, make_endpoint, settle

pytestmark = pytest.mark.committing


async def attempts_of(client: httpx.AsyncClient, tenant: Tenant, endpoint_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=tenant.headers())
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return sorted(found, key=lambda a: (a["event_id"], a["number"]))


async def test_a_delivery_is_signed_and_verifies_with_the_helper(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    endpoint = await make_endpoint(committing_client, tenant, receiver.url)
    event_id = await emit(ctx["sessionmaker"], tenant.id, EventType.quote_approved, {"id": "q1", "status": "approved"})

    assert await jobs.deliver_event(ctx, str(tenant.id), str(event_id)) == 1

    [got] = receiver.received
    assert got.headers["acorn-event-id"] == str(event_id)
    assert got.headers["acorn-event-type"] == "quote.approved"
    assert verify(got.body, got.headers["acorn-signature"], endpoint["secret"])
    assert not verify(got.body + b" ", got.headers["acorn-signature"], endpoint["secret"])
    assert not verify(got.body, got.headers["acorn-signature"], "whsec_wrong")
    api = await committing_client.get(f"/v1/events/{event_id}", headers=tenant.headers())
    assert orjson.loads(got.body) == api.json()
    [attempt] = await attempts_of(committing_client, tenant, endpoint["id"])
    assert (attempt["outcome"], attempt["status_code"], attempt["next_attempt_at"]) == ("succeeded", 200, None)


async def test_a_second_deliver_event_job_sends_nothing_again(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    await make_endpoint(committing_client, tenant, receiver.url)
    event_id = await emit(ctx["sessionmaker"], tenant.id)
    await jobs.deliver_event(ctx, str(tenant.id), str(event_id))
    assert await jobs.deliver_event(ctx, str(tenant.id), str(event_id)) == 0
    assert len(receiver.received) == 1


async def test_failures_are_retried_with_growing_backoff_until_a_2xx(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    receiver.script = [500, ("sleep", 1.6, 200), 503, 200]  # 500, a timeout (limit 1 s), 503, then success
    endpoint = await make_endpoint(committing_client, tenant, receiver.url)
    event_id = await emit(ctx["sessionmaker"], tenant.id)

    await jobs.deliver_event(ctx, str(tenant.id), str(event_id))
    await settle(ctx, tenant.id)

    tries = await attempts_of(committing_client, tenant, endpoint["id"])
    assert [a["number"] for a in tries] == [1, 2, 3, 4]
    assert [a["outcome"] for a in tries] == ["failed", "failed", "failed", "succeeded"]
    assert [a["status_code"] for a in tries] == [500, None, 503, 200]
    assert "timed out" in tries[1]["error"]
    base = ctx["settings"].webhook_retry_base_seconds
    for number, attempt in enumerate(tries[:3], start=1):
        wait = (
            datetime.fromisoformat(attempt["next_attempt_at"]) - datetime.fromisoformat(attempt["finished_at"])
        ).total_seconds()
        ceiling = base * 2 ** (number - 1)
        assert ceiling / 2 - 0.01 <= wait <= ceiling + 0.01, (number, wait)
    assert len(receiver.bodies_for(event_id)) == 4
    assert all(verify(r.body, r.headers["acorn-signature"], endpoint["secret"]) for r in receiver.received)


async def test_redirects_are_not_followed(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    receiver.script = [("redirect", receiver.url + "/elsewhere")]
    endpoint = await make_endpoint(committing_client, tenant, receiver.url)
    event_id = await emit(ctx["sessionmaker"], tenant.id)
    await jobs.deliver_event(ctx, str(tenant.id), str(event_id))

    assert [r.path for r in receiver.received] == ["/hooks"]
    [attempt] = await attempts_of(committing_client, tenant, endpoint["id"])
    assert attempt["status_code"] == 302 and "not followed" in attempt["error"]
    assert attempt["next_attempt_at"] is not None


async def test_an_event_whose_transaction_rolled_back_is_never_delivered(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    await make_endpoint(committing_client, tenant, receiver.url)
    redis = ctx["redis"]

    class Boom(Exception):
        pass

    doomed: list[uuid.UUID] = []
    with pytest.raises(Boom):
        async with job_session(ctx) as session:
            doomed.append(record(session, tenant.id, EventType.quote_rejected, {"id": "q"}).id)
            await session.flush()
            raise Boom
    async with job_session(ctx) as session:
        kept = record(session, tenant.id, EventType.quote_rejected, {"id": "q"}).id

    assert await redis.exists(f"arq:job:deliver_event:{kept}") == 1  # committed: its job was sent
    assert await redis.exists(f"arq:job:deliver_event:{doomed[0]}") == 0  # rolled back: no job at all
    async with ctx["sessionmaker"]() as s:
        assert await s.get(Event, (tenant.id, doomed[0])) is None
    # even a stray job for it finds nothing to send
    assert await jobs.deliver_event(ctx, str(tenant.id), str(doomed[0])) == 0
    await jobs.deliver_event(ctx, str(tenant.id), str(kept))
    await settle(ctx, tenant.id)
    assert [r.headers["acorn-event-id"] for r in receiver.received] == [str(kept)]


async def test_concurrent_sweeps_attempt_each_delivery_exactly_once(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    await make_endpoint(committing_client, tenant, receiver.url)
    await make_endpoint(committing_client, tenant, receiver.url + "/second")
    ids = [await emit(ctx["sessionmaker"], tenant.id) for _ in range(30)]
    async with ctx["sessionmaker"]() as s:
        from acorn_api.webhooks import service

        for event_id in ids:
            await service.fan_out(s, tenant.id, event_id)
        await s.commit()

    from acorn_api.webhooks import delivery

    async def sweep() -> int:
        return await delivery.run_batch(ctx["sessionmaker"], ctx["settings"], ctx["webhooks_http"], None, limit=7)

    done = 0
    for _ in range(10):
        done += sum(await asyncio.gather(*(sweep() for _ in range(4))))
    assert done == 60
    assert len(receiver.received) == 60
    assert len({(r.path, r.headers["acorn-event-id"]) for r in receiver.received}) == 60
    async with ctx["sessionmaker"]() as s:
        rows = (await s.scalars(select(WebhookAttempt).where(WebhookAttempt.account_id == tenant.id))).all()
    assert len(rows) == 60 and {a.number for a in rows} == {1}
    assert all(a.outcome == "succeeded" for a in rows)


async def test_deliveries_go_only_to_the_events_account(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    receiver: Receiver,
    ctx: dict[str, Any],
    committing_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_endpoint(committing_client, tenant, receiver.url + "/a")
    await make_endpoint(committing_client, other_tenant, receiver.url + "/b")
    event_id = await emit(committing_sessionmaker, tenant.id)
    await jobs.deliver_event(ctx, str(tenant.id), str(event_id))
    assert [r.path for r in receiver.received] == ["/hooks/a"]
    r = await committing_client.get(f"/v1/events/{event_id}", headers=other_tenant.headers())
    assert r.status_code == 404
    r = await committing_client.get("/v1/events", headers=other_tenant.headers())
    assert str(event_id) not in {e["id"] for e in r.json()["data"]}


async def test_deliver_event_asks_arq_to_retry_while_the_database_is_away(settings: Any) -> None:
    from arq import Retry

    from acorn_api.core.db import make_engine, make_sessionmaker

    engine = make_engine(settings, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    ctx = {"settings": settings, "sessionmaker": make_sessionmaker(engine), "redis": None, "job_try": 2}
    with pytest.raises(Retry) as raised:
        await jobs.deliver_event(ctx, str(uuid.uuid4()), str(uuid.uuid4()))
    assert raised.value.defer_score == 10_000
    await engine.dispose()
