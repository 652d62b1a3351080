"""`acorn-api dev`: the whole service on one machine with zero configuration.

With no ``ACORN_DATABASE_URL`` / ``ACORN_REDIS_URL``, PostgreSQL and Valkey come from pip wheels and keep
their data in ``.acorn-dev/`` (reused on the next start). Then: migrate, seed a demo account, and run the
API and an arq worker in one process until Ctrl-C. The code paths are production's; only where the
servers come from differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from acorn_api.settings import Settings

DEMO_FILE = "demo-account.json"
SIMULATOR_HOST = "127.0.0.1"
SIMULATOR_PORT = 8100
DEMO_CONNECTION_NAME = "Demo (SP-API simulator)"
JWT_KEYS_FILE = "jwt-signing-keys.pem"


@contextlib.contextmanager
def _servers(settings: Settings, data_dir: Path) -> Iterator[tuple[str, str]]:
    if settings.database_url and settings.redis_url:
        yield settings.database_url, settings.redis_url
        return
    from acorn_api.embedded import embedded_servers

    with embedded_servers(data_dir.resolve()) as urls:
        yield settings.database_url or urls.database_url, settings.redis_url or urls.redis_url


async def _seed_demo(settings: Settings, data_dir: Path) -> dict[str, Any]:
    """Create the demo account once; its key is kept (owner-only) in the data folder for later starts."""
    path = data_dir / DEMO_FILE
    if path.exists():
        demo: dict[str, Any] = json.loads(path.read_text())
        return demo
    from acorn_api.cli import _create_account

    demo = await _create_account(settings, "Demo Vendor")
    path.write_text(json.dumps(demo))
    path.chmod(0o600)
    return demo


async def _ensure_demo_connection(base: str, api_key: str, simulator_url: str) -> None:
    """Once the API is up: give the demo account a connection to the simulator, unless it has one."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        stores = await client.get("/v1/stores", params={"code": "DEMO-US"})
        if not stores.json().get("data"):  # a store holding the simulator's vendor codes, so POs map to it
            await client.post(
                "/v1/stores",
                json={
                    "code": "DEMO-US",
                    "name": "Demo US distribution",
                    "region": "NA",
                    "marketplace": "US",
                    "country": "US",
                    "currency": "USD",
                    "timezone": "America/New_York",
                    "vendor_codes": ["ACME1", "ACME2"],
                },
                headers={"Idempotency-Key": "acorn-dev-demo-store"},
            )
        listed = await client.get("/v1/connections", params={"limit": 200})
        if any(c["name"] == DEMO_CONNECTION_NAME for c in listed.json().get("data", [])):
            return
        created = await client.post(
            "/v1/connections",
            json={
                "name": DEMO_CONNECTION_NAME,
                "region": "NA",
                "endpoint": simulator_url,
                "marketplaces": ["US"],
                "vendor_codes": ["ACME1", "ACME2"],
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "refresh_token": "Atzr|sim-refresh",
            },
            headers={"Idempotency-Key": "acorn-dev-demo-connection"},
        )
        if created.status_code == 201:
            typer.echo(f"  demo connection {created.json()['id']} -> {simulator_url}")


async def _run(settings: Settings, host: str, port: int, data_dir: Path) -> None:
    import uvicorn

    from acorn_api.main import create_app
    from acorn_api.worker import supervise
    from acorn_sim import SimulatorConfig, create_simulator_app

    class _Embedded(uvicorn.Server):
        """A second server in this process: the API server owns Ctrl-C."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    demo = await _seed_demo(settings, data_dir)
    simulator_url = f"http://{SIMULATOR_HOST}:{SIMULATOR_PORT}"
    simulator = _Embedded(
        uvicorn.Config(
            create_simulator_app(SimulatorConfig(seed=1, purchase_orders=500)),
            host=SIMULATOR_HOST,
            port=SIMULATOR_PORT,
            log_config=None,
            lifespan="off",
        )
    )
    api = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_config=None))
    stop_worker = asyncio.Event()
    base = f"http://{host}:{port}"
    typer.echo(
        f"\nACORN API dev server\n"
        f"  API        {base}   (docs {base}/docs)\n"
        f"  readiness  {base}/readyz\n"
        f"  account    {demo['account_id']}\n"
        f"  API key    {demo['api_key']}\n"
        f"  try        curl -H 'Authorization: Bearer {demo['api_key']}' {base}/v1/stores\n"
        f'  simulator  {simulator_url}   (SP-API stand-in; demo connection "{DEMO_CONNECTION_NAME}")\n'
        f"Ctrl-C stops everything.\n"
    )

    async def serve_simulator() -> None:
        try:
            await simulator.serve()
        except SystemExit:  # uvicorn exits when it cannot bind: keep the API and worker running
            typer.echo(f"  simulator  not started: {SIMULATOR_HOST}:{SIMULATOR_PORT} is in use", err=True)

    simulator_task = asyncio.create_task(serve_simulator())
    worker_task = asyncio.create_task(supervise(settings, stop_worker, handle_signals=False))
    demo_task = asyncio.create_task(_ensure_demo_connection(base, demo["api_key"], simulator_url))
    try:
        await api.serve()
    finally:
        demo_task.cancel()
        simulator.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await simulator_task
        stop_worker.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(worker_task, 30)


def run_dev(*, host: str, port: int, data_dir: Path) -> None:
    from acorn_api.migrate import upgrade

    data_dir.mkdir(parents=True, exist_ok=True)
    # JWT signing keys for dev live (owner-only) beside the data, so tokens survive restarts.
    os.environ.setdefault("ACORN_JWT_KEYS_FILE", str((data_dir / JWT_KEYS_FILE).resolve()))
    # the demo connection points at the simulator: the connector calls only hosts an operator lists
    listed = [h for h in os.environ.get("ACORN_SPAPI_ALLOWED_HOSTS", "").split(",") if h.strip()]
    if f"{SIMULATOR_HOST}:{SIMULATOR_PORT}" not in listed:
        os.environ["ACORN_SPAPI_ALLOWED_HOSTS"] = ",".join([*listed, f"{SIMULATOR_HOST}:{SIMULATOR_PORT}"])
    base = Settings()
    with _servers(base, data_dir) as (database_url, redis_url):
        os.environ["ACORN_DATABASE_URL"] = database_url
        os.environ["ACORN_REDIS_URL"] = redis_url
        settings = Settings(log_json=False) if "ACORN_LOG_JSON" not in os.environ else Settings()
        typer.echo(f"database {settings.database_url.split('@')[-1] if settings.database_url else '?'}")
        upgrade(database_url)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(settings, host, port, data_dir))
