"""Helpers for the SP-API simulator tests: model lookup and JSON-Schema validation of responses."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft4Validator, Draft7Validator, FormatChecker

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MODELS = (REPO_ROOT / ".." / "shared" / "sp-api-models").resolve()
VENDORED_MODELS = REPO_ROOT / "src" / "acorn_sim" / "spec"
MODELS_DIR = SHARED_MODELS if SHARED_MODELS.is_dir() else VENDORED_MODELS

LWA_FORM = {
    "grant_type": "refresh_token",
    "refresh_token": "Atzr|sim-refresh",
    "client_id": "sim-client",
    "client_secret": "sim-secret",
}


@cache
def model(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((MODELS_DIR / name).read_text())
    return document


def response_schema(file_name: str, path: str, method: str, status: int) -> dict[str, Any]:
    """The response schema of an operation, with the model's definitions so `#/definitions` refs resolve."""
    document = model(file_name)
    schema = document["paths"][path][method]["responses"][str(status)]["schema"]
    return {**schema, "definitions": document["definitions"]}


def assert_matches_model(response: httpx.Response, file_name: str, path: str, method: str) -> Any:
    body = response.json()
    schema = response_schema(file_name, path, method, response.status_code)
    errors = sorted(Draft4Validator(schema).iter_errors(body), key=str)
    assert not errors, [error.message for error in errors[:5]]
    assert response.headers["x-amzn-RequestId"]
    return body


def assert_valid_report(document: Any, schema_name: str) -> None:
    validator = Draft7Validator(model(schema_name), format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, [error.message for error in errors[:5]]


async def access_token(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/auth/o2/token", data=LWA_FORM)
    assert response.status_code == 200, response.text
    return {"x-amz-access-token": response.json()["access_token"]}


class FakeClock:
    """Monotonic clock under test control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
