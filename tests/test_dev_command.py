"""`acorn-api dev` on a machine with no servers: embedded PostgreSQL and Valkey, migrated and seeded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_live_server import free_port


@pytest.mark.slow
def test_dev_serves_stores_on_embedded_servers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACORN_")}
    port = free_port()
    data_dir = tmp_path / "dev-data"
    process = subprocess.Popen(
        [sys.executable, "-m", "acorn_api.cli", "dev", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert ready is not None, "acorn-api dev never answered /readyz"
        assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}
        demo = json.loads((data_dir / "demo-account.json").read_text())
        stores = httpx.get(f"{base}/v1/stores", headers={"Authorization": f"Bearer {demo['api_key']}"})
        assert stores.status_code == 200
        assert "data" in stores.json()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert b"ACORN API dev server" in output, output.decode(errors="replace")[-3000:]
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
