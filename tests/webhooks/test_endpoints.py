"""/v1/webhook-endpoints: secrets shown once, rotation with overlap, event type filters, automatic disabling."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from acorn_api.webhooks import jobs, verify
from acorn_api.webhooks.events import EventType
from acorn_api.webhooks.models import Event, WebhookDelivery, WebhookEndpoint
from tests.conftest import Tenant
from tests.webhooks.conftest import Receiver, emit, make_endpoint, settle

pytestmark = pytest.mark.committing


async def test_the_secret_is_shown_once_and_stored_encrypted(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    created = await make_endpoint(committing_client, tenant, receiver.url, ["quote.approved"], description="ERP")
    assert created["secret"].startswith("whsec_") and created["event_types"] == ["quote.approved"]
    r = await committing_client.get(f"/v1/webhook-endpoints/{created['id']}", headers=tenant.headers())
    assert r.status_code == 200 and "secret" not in r.json()
    listed = await committing_client.get("/v1/webhook-endpoints", headers=tenant.headers())
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]] and "secret" not in listed.json()["data"][0]
    async with ctx["sessionmaker"]() as s:
        row = await s.get(WebhookEndpoint, (tenant.id, created["id"]))
        assert row is not None and created["secret"].encode() not in row.secret_encrypted


@pytest.mark.parametrize(
    ("event_types", "field_error"),
    [(["quote.exploded"], "Input should be"), (["*", "quote.approved"], "cannot be combined"), ([], "at least")],
)
async def test_event_types_are_validated(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, event_types: Any, field_error: str
) -> None:
    r = await committing_client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": event_types}, headers=tenant.headers()
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"][:2] == ["body", "event_types"]
    assert field_error in r.text


async def test_only_subscribed_types_are_delivered(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    await make_endpoint(committing_client, tenant, receiver.url + "/quotes", ["quote.approved", "quote.rejected"])
    await make_endpoint(committing_client, tenant, receiver.url + "/all", "*")
    await make_endpoint(committing_client, tenant, receiver.url + "/off", "*", status="disabled")
    approved = await emit(ctx["sessionmaker"], tenant.id, EventType.quote_approved)
    synced = await emit(ctx["sessionmaker"], tenant.id, EventType.sync_run_succeeded)
    for event_id in (approved, synced):
        await jobs.deliver_event(ctx, str(tenant.id), str(event_id))
    got = sorted((r.path, r.headers["acorn-event-type"]) for r in receiver.received)
    assert got == [
        ("/hooks/all", "quote.approved"),
        ("/hooks/all", "sync_run.succeeded"),
        ("/hooks/quotes", "quote.approved"),
    ]


async def test_during_a_rotation_both_secrets_sign(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    created = await make_endpoint(committing_client, tenant, receiver.url)
    r = await committing_client.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret", json={"overlap_seconds": 3600}, headers=tenant.headers()
    )
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] != created["secret"] and rotated["secret_rotation_ends_at"] is not None
    await jobs.deliver_event(ctx, str(tenant.id), str(await emit(ctx["sessionmaker"], tenant.id)))

    r = await committing_client.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret", json={"overlap_seconds": 0}, headers=tenant.headers()
    )
    final = r.json()["secret"]
    await jobs.deliver_event(ctx, str(tenant.id), str(await emit(ctx["sessionmaker"], tenant.id)))

    during, after = receiver.received
    assert during.headers["acorn-signature"].count("v1=") == 2
    assert verify(during.body, during.headers["acorn-signature"], created["secret"])
    assert verify(during.body, during.headers["acorn-signature"], rotated["secret"])
    assert after.headers["acorn-signature"].count("v1=") == 1
    assert verify(after.body, after.headers["acorn-signature"], final)
    assert not verify(after.body, after.headers["acorn-signature"], rotated["secret"])


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_with_an_event(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    ctx["settings"] = ctx["settings"].model_copy(
        update={"webhook_retry_window_seconds": 2, "webhook_retry_base_seconds": 0.3}
    )
    receiver.default = 500
    broken = await make_endpoint(committing_client, tenant, receiver.url + "/broken", ["quote.approved"])
    watcher = await make_endpoint(committing_client, tenant, receiver.url + "/watch", ["webhook_endpoint.disabled"])
    await jobs.deliver_event(ctx, str(tenant.id), str(await emit(ctx["sessionmaker"], tenant.id)))
    await asyncio.sleep(0.5)
    await jobs.deliver_event(ctx, str(tenant.id), str(await emit(ctx["sessionmaker"], tenant.id)))
    await settle(ctx, tenant.id)

    r = await committing_client.get(f"/v1/webhook-endpoints/{broken['id']}", headers=tenant.headers())
    assert r.json()["status"] == "disabled"
    assert r.json()["disabled_reason"].startswith("every delivery failed since")
    async with ctx["sessionmaker"]() as s:
        [event] = (
            await s.scalars(
                select(Event).where(Event.account_id == tenant.id, Event.type == "webhook_endpoint.disabled")
            )
        ).all()
    assert event.data["id"] == broken["id"] and event.data["status"] == "disabled"
    # the event goes to the endpoint that watches for it (which answers 500 here too, so it is attempted)
    await jobs.deliver_event(ctx, str(tenant.id), str(event.id))
    assert receiver.bodies_for(event.id)[0].path == "/hooks/watch"
    assert watcher["id"]

    # enabled again: its paused deliveries resume (those whose 3-day window ran out stay failed: redeliver them)
    async with ctx["sessionmaker"]() as s:
        paused = (
            await s.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.account_id == tenant.id,
                    WebhookDelivery.endpoint_id == broken["id"],
                    WebhookDelivery.status == "pending",
                )
            )
        ).all()
    assert paused and all(d.next_attempt_at is None for d in paused)
    receiver.default = 200
    r = await committing_client.patch(
        f"/v1/webhook-endpoints/{broken['id']}", json={"status": "enabled"}, headers=tenant.headers()
    )
    assert r.status_code == 200 and r.json()["disabled_reason"] is None
    before = len(receiver.received)
    await settle(ctx, tenant.id)
    assert len([r for r in receiver.received[before:] if r.path == "/hooks/broken"]) == len(paused)


async def test_changes_are_validated_and_versioned(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver
) -> None:
    created = await make_endpoint(committing_client, tenant, receiver.url)
    url = f"/v1/webhook-endpoints/{created['id']}"
    r = await committing_client.patch(url, json={"url": "https://192.168.0.1/x"}, headers=tenant.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "url"]
    r = await committing_client.patch(url, json={"description": "new", "version": 1}, headers=tenant.headers())
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await committing_client.patch(url, json={"description": "stale", "version": 1}, headers=tenant.headers())
    assert r.status_code == 409
    r = await committing_client.delete(url, headers=tenant.headers())
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (await committing_client.get(url, headers=tenant.headers())).status_code == 404


@pytest.mark.parametrize("event_types", [["quote.approved", "sync_run.failed"], "*", ["*"]])
async def test_changing_event_types_stores_their_names_without_serializer_warnings(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, event_types: Any
) -> None:
    """Found by the deep fuzz profile: the update dumped validated names through the enum/"*" union it declares,
    and pydantic warned on every PATCH that the serialized value "may not be as expected"."""
    created = await make_endpoint(committing_client, tenant, receiver.url)
    url = f"/v1/webhook-endpoints/{created['id']}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = await committing_client.patch(url, json={"event_types": event_types}, headers=tenant.headers())
    assert r.status_code == 200, r.text
    assert r.json()["event_types"] == (["*"] if "*" in event_types else event_types)
    assert (await committing_client.get(url, headers=tenant.headers())).json()["event_types"] == r.json()["event_types"]


async def test_rotation_options_are_validated(
    committing_client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver
) -> None:
    created = await make_endpoint(committing_client, tenant, receiver.url)
    url = f"/v1/webhook-endpoints/{created['id']}/rotate-secret"
    for body in ({"overlap_seconds": -1}, {"overlap_seconds": 10**9}, {"surprise": 1}):
        r = await committing_client.post(url, json=body, headers=tenant.headers())
        assert r.status_code == 422, (body, r.text)
    r = await committing_client.post(url, json={"overlap_seconds": None}, headers=tenant.headers())
    assert r.status_code == 200 and r.json()["secret_rotation_ends_at"] is not None  # null: the default overlap
