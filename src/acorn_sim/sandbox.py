"""Replay of the `x-amzn-api-sandbox` static examples, like Amazon's sandbox endpoint does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .specs import OPERATIONS, find_operation


@dataclass(frozen=True, slots=True)
class SandboxExample:
    status: int
    parameters: dict[str, Any]
    response: Any

    @property
    def is_catch_all(self) -> bool:
        """Examples without parameters (or with an empty body) answer any request."""
        return all(name == "body" and value == {} for name, value in self.parameters.items())


def _normalise(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def examples(operation: str) -> list[SandboxExample]:
    _path, _method, op = find_operation(operation)
    found = []
    for status, response in op["responses"].items():
        for example in response.get("x-amzn-api-sandbox", {}).get("static", []):
            parameters = {
                name: (spec.get("value", {}) if name == "body" else _normalise(spec["value"]))
                for name, spec in example["request"].get("parameters", {}).items()
            }
            found.append(SandboxExample(int(status), parameters, example["response"]))
    return found


class SandboxCatalog:
    def __init__(self) -> None:
        self._examples = {operation: examples(operation) for operation in OPERATIONS}

    def match(self, operation: str, parameters: dict[str, Any]) -> SandboxExample | None:
        """The example whose parameters equal the request's; otherwise the operation's catch-all."""
        candidates = self._examples.get(operation, [])
        for example in candidates:
            if not example.is_catch_all and example.parameters == parameters:
                return example
        for example in candidates:
            if example.is_catch_all:
                return example
        return None
