"""Shared helpers (no tests here) for the connector tests: a real simulator on a port, contexts, ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acorn_api.amazon import connector
from acorn_api.amazon.client import RetryPolicy
from acorn_api.amazon.models import PurchaseOrder, PurchaseOrderItem
from acorn_api.amazon.sync import SyncContext
from acorn_api.settings import Settings
from acorn_sim import SimulatorConfig, create_simulator_app
from acorn_sim.app import Simulator

ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
#: fast retries so fault storms finish quickly; a short timeout so injected timeouts cost little
FAST_RETRY = RetryPolicy(max_attempts=10, base_delay=0.02, max_delay=0.2, timeout=1.0)


@dataclass
class Served:
    url: str
    simulator: Simulator


def free_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def served(config: SimulatorConfig) -> AsyncIterator[Served]:
    """The simulator under uvicorn in its own thread and event loop, on a free local port."""
    app = create_simulator_app(config)
    sock = free_port()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "simulator failed to start"
            assert time.monotonic() < deadline, "simulator did not start within 10 s"
            await asyncio.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}", app.state.simulator)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
        sock.close()


def sim_config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = {
        "seed": 7,
        "anchor": ANCHOR,
        "purchase_orders": 150,
        "history_days": 30,
        "transaction_delay_seconds": 0.0,
    }
    return SimulatorConfig(**{**base, **overrides})


def connection_body(endpoint: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"Simulator {uuid.uuid4().hex[:6]}",
        "region": "NA",
        "endpoint": endpoint,
        "marketplaces": ["US"],
        "vendor_codes": ["ACME1", "ACME2"],
        "client_id": "sim-client",
        "client_secret": "sim-secret",
        "refresh_token": "Atzr|sim-refresh",
    }
    body.update(overrides)
    return body


def sync_context(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    http: httpx.AsyncClient,
    **overrides: Any,
) -> SyncContext:
    options: dict[str, Any] = {"retry": FAST_RETRY, "report_poll_initial": 0.01}
    options.update(overrides)
    # LWA goes through the guarded transport, as in the worker (the simulator's host is on the allow-list)
    return SyncContext(
        settings=settings,
        sessionmaker=sessionmaker,
        redis=redis,
        http=http,
        token_cache=connector.token_cache(settings),
        **options,
    )


def range_body(days: int = 30) -> dict[str, Any]:
    """The whole generated history: every purchase order the simulator holds."""
    return {
        "kind": "orders",
        "from": (ANCHOR - timedelta(days=days)).isoformat(),
        "to": (ANCHOR + timedelta(days=1)).isoformat(),
    }


def expected_orders(simulator: Simulator) -> dict[str, dict[str, Any]]:
    """Ground truth: what the simulator would say about every purchase order right now."""
    truth: dict[str, dict[str, Any]] = {}
    for po in simulator.data.orders:
        truth[po.number] = {
            "state": po.state,
            "vendor_code": po.vendor_code,
            "purchase_order_date": po.order_date.replace(microsecond=0),
            "items": {
                str(item.sequence): (
                    item.product.asin,
                    0 if item.cancelled else item.ordered,
                    item.product.net_cost.quantize(Decimal("0.01")),
                )
                for item in po.items
            },
        }
    return truth


async def stored_orders(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID
) -> dict[str, dict[str, Any]]:
    async with sessionmaker() as session:
        orders = (await session.scalars(select(PurchaseOrder).where(PurchaseOrder.account_id == account_id))).all()
        items = (
            await session.scalars(select(PurchaseOrderItem).where(PurchaseOrderItem.account_id == account_id))
        ).all()
    by_po: dict[uuid.UUID, dict[str, tuple[Any, ...]]] = {}
    for item in items:
        assert item.net_cost is not None
        by_po.setdefault(item.purchase_order_id, {})[item.item_sequence_number] = (
            item.asin,
            item.ordered_quantity,
            item.net_cost.quantize(Decimal("0.01")),
        )
    numbers = [po.purchase_order_number for po in orders]
    assert len(numbers) == len(set(numbers)), "a purchase order is stored twice"
    return {
        po.purchase_order_number: {
            "state": po.state,
            "vendor_code": po.vendor_code,
            "purchase_order_date": po.purchase_order_date,
            "items": by_po.get(po.id, {}),
        }
        for po in orders
    }
