"""A worker killed (SIGKILL) in the middle of a POST: the attempt is recorded as interrupted, the event is
delivered again by the next sweep once the lease has run out — never lost, never recorded twice."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from acorn_api.core.time import utcnow
from acorn_api.settings import Settings
from acorn_api.webhooks import delivery, service
from acorn_api.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.conftest import Tenant
from tests.webhooks.conftest import Receiver, emit, make_endpoint

pytestmark = pytest.mark.committing
ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import asyncio, sys, uuid
from acorn_api.core.db import make_engine, make_sessionmaker
from acorn_api.settings import Settings
from acorn_api.webhooks import delivery, urlguard

async def main() -> None:
    settings = Settings(environment="test", database_url=sys.argv[1], webhook_timeout_seconds=30)
    engine = make_engine(settings)
    client = urlguard.guarded_client(urlguard.policy_for(settings), timeout=30)
    only = [(uuid.UUID(sys.argv[2]), uuid.UUID(sys.argv[3]))]
    await delivery.run_batch(make_sessionmaker(engine), settings, client, None, limit=1, only=only)

asyncio.run(main())
"""


async def test_a_worker_killed_mid_delivery_leads_to_a_redelivery(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    receiver: Receiver,
    ctx: dict[str, Any],
    settings: Settings,
) -> None:
    receiver.script = [("hang",)]  # the first POST never gets an answer
    endpoint = await make_endpoint(committing_client, tenant, receiver.url)
    event_id = await emit(ctx["sessionmaker"], tenant.id)
    async with ctx["sessionmaker"]() as s:
        [delivery_id] = await service.fan_out(s, tenant.id, event_id)
        await s.commit()

    assert settings.database_url
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, settings.database_url, str(tenant.id), str(delivery_id), env=env
    )
    try:
        deadline = time.monotonic() + 30
        while not receiver.received:
            assert worker.returncode is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, "the worker never sent the POST"
            await asyncio.sleep(0.05)
    finally:
        worker.kill()  # SIGKILL: no cleanup, no finally blocks
        await asyncio.wait_for(worker.wait(), 10)

    async with ctx["sessionmaker"]() as s:
        [first] = (await s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id))).all()
        assert first.outcome == "in_flight"
        row = await s.get(WebhookDelivery, (tenant.id, delivery_id))
        assert row is not None and row.status == "pending"

    # before the lease runs out, no other worker touches it
    assert (
        await delivery.run_batch(
            ctx["sessionmaker"], ctx["settings"], ctx["webhooks_http"], None, limit=10, only=[(tenant.id, delivery_id)]
        )
        == 0
    )
    # after it, the next sweep takes the delivery over
    later = utcnow() + timedelta(seconds=30 + delivery.LEASE_MARGIN_SECONDS + 1)
    done = await delivery.run_batch(
        ctx["sessionmaker"],
        ctx["settings"],
        ctx["webhooks_http"],
        None,
        limit=10,
        only=[(tenant.id, delivery_id)],
        now=later,
    )
    assert done == 1

    r = await committing_client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=tenant.headers())
    tries = sorted(r.json()["data"], key=lambda a: a["number"])
    assert [(a["number"], a["outcome"]) for a in tries] == [(1, "interrupted"), (2, "succeeded")]
    assert len(receiver.bodies_for(event_id)) == 2  # at least once: the receiver deduplicates by event id
    async with ctx["sessionmaker"]() as s:
        row = await s.get(WebhookDelivery, (tenant.id, delivery_id), populate_existing=True)
        assert row is not None and (row.status, row.attempts) == ("succeeded", 2)
