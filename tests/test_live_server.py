"""The app under real uvicorn over real HTTP, and the CLI's account bootstrap."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

import httpx
import pytest
import uvicorn

from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.stores.factories import store_body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url and settings.redis_url
    return {
        **os.environ,
        "ACORN_DATABASE_URL": settings.database_url.replace("+asyncpg", ""),
        "ACORN_REDIS_URL": settings.redis_url,
    }


def create_account_via_cli(settings: Settings, name: str) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "acorn_api.cli", "create-account", "--name", name, "--json"],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    created: dict[str, str] = json.loads(result.stdout)
    return created


@pytest.mark.committing
def test_create_account_prints_one_json_object_with_a_working_key(settings: Settings) -> None:
    created = create_account_via_cli(settings, "CLI Vendor")
    assert set(created) == {"account_id", "api_key"}
    assert created["api_key"].startswith("acn_")


@pytest.mark.committing
async def test_stores_over_real_http(settings: Settings) -> None:
    created = await asyncio.to_thread(create_account_via_cli, settings, "HTTP Vendor")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        headers = {"Authorization": f"Bearer {created['api_key']}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            assert (await client.get("/readyz")).json()["status"] == "ok"
            made = await client.post("/v1/stores", json=store_body())
            assert made.status_code == 201
            listed = await client.get("/v1/stores")
            assert [s["id"] for s in listed.json()["data"]] == [made.json()["id"]]
            assert listed.headers["x-request-id"]
    finally:
        server.should_exit = True
        await serving
