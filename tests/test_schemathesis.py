"""Property-based contract testing: schemathesis drives the live app from its own OpenAPI schema.

All phases (examples, coverage, fuzzing, stateful) and all checks run against real uvicorn, real
PostgreSQL and Redis. Two things are left out, on purpose:

* ``positive_data_acceptance``: it expects every schema-valid request to succeed, but many rules are
  beyond what JSON Schema can say (a store code unique per account, a currency matching the
  marketplace, an opaque cursor the API issued). Those answers are 409/422 problems by design.
* rolling and revoking API keys: the stateful phase would roll or revoke the very key the run uses;
  ``tests/accounts`` covers both operations.

A second, focused fuzzing phase hammers the read operations (every filter and path parameter) with more
examples and NUL bytes allowed: it is what found ``GET /v1/items?q=%00`` answering 500 (issue 12), and it
would find the next such input by itself.

The stateful phase follows the OpenAPI links the app publishes (``core/openapi_links.py``): create → read,
update, delete and actions, with the ``version`` carried over and created ids put into other creations'
bodies, so chains such as create item → create quote → submit → approve run with real ids. It runs on its own,
with positive data from a schema narrowed to values the API accepts (``tests/schemathesis_hooks.py``);
the examples, coverage and fuzzing phases use the unmodified schema, negative data included.

Two profiles:

* **bounded** (the default, what ``pytest`` and CI run): a fixed seed, 10 examples per operation, 60 s of
  stateful scenarios of up to 8 steps, 40 examples per read operation: about 3 minutes on a 2-core machine.
* **deep**: ``ACORN_FUZZ_DEEP=1 pytest tests/test_schemathesis.py -p no:randomly`` — 150 examples per
  operation, 20 minutes of scenarios of up to 30 steps, 400 examples per read operation, a fresh seed each
  run (printed by schemathesis; pin one with ``ACORN_FUZZ_SEED=<n>``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.test_live_server import create_account_via_cli, free_port


@dataclass(frozen=True)
class Profile:
    max_examples: int  # per operation, in the examples and fuzzing phases
    stateful_seconds: int  # the stateful phase repeats scenarios until this is spent
    max_steps: int  # per stateful scenario
    read_examples: int  # per read operation, in the focused read fuzzing
    seed: str | None  # None: schemathesis picks one and prints it
    timeout: int  # seconds, for each schemathesis run


BOUNDED = Profile(max_examples=10, stateful_seconds=60, max_steps=8, read_examples=40, seed="20261127", timeout=900)
DEEP = Profile(max_examples=150, stateful_seconds=1200, max_steps=30, read_examples=400, seed=None, timeout=4 * 3600)
PROFILE = DEEP if os.environ.get("ACORN_FUZZ_DEEP") == "1" else BOUNDED
SEED = os.environ.get("ACORN_FUZZ_SEED") or PROFILE.seed


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    api_key: str


@pytest.fixture(scope="module")
def live_api(settings: Settings) -> Iterator[LiveApi]:
    created = create_account_via_cli(settings, "Schemathesis Vendor")
    unthrottled = settings.model_copy(update={"rate_limit_enabled": False})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(unthrottled), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API did not start")
        threading.Event().wait(0.05)
    # build the OpenAPI document once before the fuzzer asks for it with its own, shorter timeout
    httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=120).raise_for_status()
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", created["api_key"])
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.committing
@pytest.mark.slow
@pytest.mark.timeout(PROFILE.timeout + 60)  # the profile's own budget, not the suite's 300 s default
def test_no_5xx_and_no_response_that_breaks_the_schema(live_api: LiveApi, tmp_path: Path) -> None:
    result = _schemathesis(
        live_api,
        tmp_path,
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-operation-id",
        "roll_api_key",
        "--exclude-operation-id",
        "revoke_api_key",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(PROFILE.max_examples),
        "--generation-database",
        "none",
        "--continue-on-failure",
        timeout=PROFILE.timeout,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]


@pytest.mark.committing
@pytest.mark.slow
@pytest.mark.timeout(PROFILE.timeout + 60)  # the profile's own budget, not the suite's 300 s default
def test_stateful_chains_through_the_published_links(live_api: LiveApi, tmp_path: Path) -> None:
    """Create → read/update/act/delete chains, following the links of ``core/openapi_links.py``.

    Positive data only, from a schema narrowed to values the API accepts (``tests/schemathesis_hooks.py``), so
    that creations succeed and the chain goes on; the previous test covers the unmodified schema and negative
    data. All checks, including use-after-free and resource availability, which only a chain can exercise.
    """
    result = _schemathesis(
        live_api,
        tmp_path,
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-operation-id",
        "roll_api_key",
        "--exclude-operation-id",
        "revoke_api_key",
        "--phases",
        "stateful",
        "--mode",
        "positive",
        "--max-examples",
        "1000",
        "--max-time",
        str(PROFILE.stateful_seconds),
        "--generation-database",
        "none",
        "--continue-on-failure",
        timeout=PROFILE.timeout,
        hooks=True,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    covered = re.search(r"API Links:\s+(\d+) covered", result.stdout)
    # the chains really ran: a run that followed (almost) no links would pass while testing nothing. The budget
    # is time, so a loaded machine covers fewer (16 at load 10, 43 at load 5 with 90 s); 10 is the floor.
    assert covered and int(covered.group(1)) >= 10, result.stdout[-5000:]


# Every check is on by default (no ``--checks`` on the command line: a check named there would override the
# per-operation settings below). ``DELETE /v1/stores/{store_id}`` archives a store that other data still refers
# to (quotes, purchase orders, ledger entries keep their history), so reading or renaming it afterwards answers
# 200 with status ``archived`` (tests/stores/test_router.py), which ``use_after_free`` would report as a
# resource read after its deletion. The check stays on for every other operation.
_ARCHIVED_STORES_ARE_READABLE = """
[[operations]]
include-operation-id = ["get_store", "update_store"]
checks.use_after_free.enabled = false
"""


def _hooks_env() -> dict[str, str]:
    """schemathesis imports the hooks module by name: the repository root must be importable (cwd is tmp)."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": path}


def _schemathesis(
    live_api: LiveApi, tmp_path: Path, *args: str, timeout: int, hooks: bool = False
) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a dev dependency"
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"[phases.stateful]\nmax-steps = {PROFILE.max_steps}\n{_ARCHIVED_STORES_ARE_READABLE}")
    seed = ["--seed", SEED] if SEED else []
    return subprocess.run(
        [
            executable,
            "--config-file",
            str(config),
            "run",
            f"{live_api.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {live_api.api_key}",
            # a loaded CI machine may take seconds for one answer; a hang still fails at the subprocess timeout
            "--request-timeout",
            "60",
            # one worker: the machine is small and shared, and a fixed seed then means a fixed run
            "--workers",
            "1",
            *seed,
            *args,
            "--no-color",
        ],
        cwd=tmp_path,
        env=_hooks_env() if hooks else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.committing
@pytest.mark.slow
@pytest.mark.timeout(PROFILE.timeout + 60)  # the profile's own budget, not the suite's 300 s default
def test_fuzzing_the_read_operations_finds_no_5xx(live_api: LiveApi, tmp_path: Path) -> None:
    result = _schemathesis(
        live_api,
        tmp_path,
        "--phases",
        "fuzzing",
        "--include-method",
        "GET",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--generation-allow-x00",
        "true",
        "--max-examples",
        str(PROFILE.read_examples),
        "--generation-database",
        "none",
        "--continue-on-failure",
        timeout=PROFILE.timeout,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
