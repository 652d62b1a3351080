"""schemathesis on the reconciliation and analytics operations alone: no 5xx, no schema-breaking answer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_schemathesis import LiveApi, live_api  # noqa: F401 - the live server fixture


@pytest.mark.committing
@pytest.mark.slow
def test_reconciliation_operations_keep_the_contract(live_api: LiveApi, tmp_path: Path) -> None:  # noqa: F811
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a dev dependency"
    result = subprocess.run(
        [
            executable,
            "run",
            f"{live_api.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {live_api.api_key}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--include-tag",
            "reconciliation",
            "--include-tag",
            "analytics",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "30",
            "--seed",
            "20261201",
            "--continue-on-failure",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
