"""A real HTTP receiver on 127.0.0.1 (http.server in a thread) and helpers to emit and deliver events."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.settings import Settings
from acorn_api.webhooks import delivery, urlguard
from acorn_api.webhooks.events import EventType, record
from acorn_api.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import AccountFactory, Tenant


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers each POST from ``script`` (then ``default``): an int status, ("sleep", seconds, status),
    ("redirect", location) or ("hang",) — which blocks until :meth:`release`."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    default: Any = 200
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def release(self) -> None:
        self.released.set()

    def bodies_for(self, event_id: uuid.UUID | str) -> list[Received]:
        return [r for r in self.received if r.headers.get("acorn-event-id") == str(event_id)]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
            action = receiver.next_action()
            status = action
            if isinstance(action, tuple):
                if action[0] == "sleep":
                    time.sleep(action[1])
                    status = action[2]
                elif action[0] == "hang":
                    receiver.released.wait(60)
                    status = 200
                elif action[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", action[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            payload = b"ok"
            try:
                self.send_response(int(status))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default listen backlog of 5 refuses parallel connects
    daemon_threads = True


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(found))
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.release()
    server.shutdown()
    server.server_close()


@pytest.fixture
def wh_settings(settings: Settings) -> Settings:
    """Fast retries and a short timeout, so backoff can be watched in a test."""
    return settings.model_copy(
        update={"webhook_timeout_seconds": 1.0, "webhook_retry_base_seconds": 0.4, "webhook_retry_max_seconds": 5.0}
    )


@pytest.fixture
async def http(wh_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    client = urlguard.guarded_client(urlguard.policy_for(wh_settings), timeout=wh_settings.webhook_timeout_seconds)
    yield client
    await client.aclose()


@pytest.fixture
def ctx(
    wh_settings: Settings,
    committing_sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    http: httpx.AsyncClient,
) -> dict[str, Any]:
    from acorn_api.webhooks.jobs import HTTP_KEY

    return {"settings": wh_settings, "sessionmaker": committing_sessionmaker, "redis": redis, HTTP_KEY: http}


@pytest.fixture
async def tenant(
    make_committed_account: AccountFactory, committing_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Tenant]:
    """A committed account whose endpoints are deleted afterwards, so no later sweep tries them."""
    found = await make_committed_account("Webhook Vendor")
    yield found
    async with committing_sessionmaker() as s:
        await s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == found.id))
        await s.commit()


@pytest.fixture
async def other_tenant(
    make_committed_account: AccountFactory, committing_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Tenant]:
    found = await make_committed_account("Other Webhook Vendor")
    yield found
    async with committing_sessionmaker() as s:
        await s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == found.id))
        await s.commit()


async def make_endpoint(
    client: httpx.AsyncClient, tenant: Tenant, url: str, event_types: Any = "*", **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhook-endpoints", json={"url": url, "event_types": event_types, **extra}, headers=tenant.headers()
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def emit(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: uuid.UUID,
    event_type: EventType = EventType.quote_approved,
    data: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Record and commit one event, as a domain service would (its delivery job is left to the test)."""
    async with sessionmaker() as s:
        event = record(s, account_id, event_type, data or {"id": str(uuid.uuid4()), "status": "approved"})
        await s.commit()
    return event.id


async def pending_count(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> int:
    async with sessionmaker() as s:
        found = await s.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(
                WebhookDelivery.account_id == account_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at.is_not(None),  # paused (endpoint disabled) is settled too
            )
        )
    return int(found or 0)


async def settle(ctx: dict[str, Any], account_id: uuid.UUID, *, within: float = 20.0) -> int:
    """Run the retry cron's batches until the account has no pending delivery; returns the attempts made."""
    total = 0
    deadline = time.monotonic() + within
    while await pending_count(ctx["sessionmaker"], account_id):
        assert time.monotonic() < deadline, "deliveries still pending"
        total += await delivery.run_batch(
            ctx["sessionmaker"], ctx["settings"], ctx["webhooks_http"], ctx["redis"], limit=200
        )
        await asyncio.sleep(0.05)
    return total
