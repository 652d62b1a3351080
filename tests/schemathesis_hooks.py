"""Schemathesis hooks for the *stateful* run only (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``).

The stateful phase can only chain create → read/update/delete when a creation succeeds, and random data that
fits the published JSON Schema rarely does: the API enforces rules JSON Schema does not say (an ISO 4217
currency, an ISO 3166 country, an IANA time zone, an ASIN's shape, no control characters in text, a webhook
URL that resolves to an allowed address). Each of those rules has its own tests in its domain, and the
examples/coverage/fuzzing run uses the unmodified schema in all modes, negative included.

For the stateful run (positive data only) this hook narrows the schema schemathesis loads to values the API
accepts, so chains get past their first step. It narrows; it never widens, so no check can pass because of it.
"""

from __future__ import annotations

from typing import Any

import schemathesis

NO_CONTROL_CHARACTERS = "^[^\\x00-\\x1f\\x7f]*$"

# property name → the schema its values are drawn from (all of them valid for the API)
NARROWED: dict[str, dict[str, Any]] = {
    "currency": {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY", "CAD"]},
    "country": {"type": "string", "enum": ["US", "DE", "GB", "JP", "CA"]},
    "timezone": {"type": "string", "enum": ["America/New_York", "Europe/Berlin", "UTC"]},
    "asin": {"type": "string", "pattern": "^B0[A-Z0-9]{8}$"},
    "sync_schedule": {"type": "string", "enum": ["PT1H", "3600", "0 */2 * * *"]},
    "url": {"type": "string", "enum": ["http://127.0.0.1:9/hook"]},  # loopback is allowed in the test environment
}


def _narrow(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _narrow(item)
        return
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if isinstance(properties, dict):
        for name, schema in list(properties.items()):
            if name in NARROWED and isinstance(schema, dict) and schema.get("type") == "string":
                properties[name] = dict(NARROWED[name])
    if node.get("type") == "string" and not ({"pattern", "format", "enum", "const"} & set(node)):
        node["pattern"] = NO_CONTROL_CHARACTERS
    if node.get("type") == "object" and node.get("additionalProperties") not in (None, False):
        node["propertyNames"] = {"pattern": NO_CONTROL_CHARACTERS}
    for key, value in node.items():
        if key not in ("examples", "example", "default", "enum", "const"):
            _narrow(value)


def _inline(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """A copy of ``node`` with every ``$ref`` replaced by a copy of its target (request schemas have no cycles)."""
    if depth > 30:
        raise ValueError("a request schema nests deeper than expected")
    if isinstance(node, list):
        return [_inline(item, components, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = components[node["$ref"].rsplit("/", 1)[-1]]
        return _inline(target, components, depth + 1)
    return {key: _inline(value, components, depth + 1) for key, value in node.items()}


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """Narrow what requests carry (bodies and parameters), never what responses are checked against."""
    components = raw_schema.get("components", {}).get("schemas", {})
    for operations in raw_schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            # an optional header whose generated values collide across requests ("already used")
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p.get("name", "").lower() != "idempotency-key"
            ]
            for parameter in operation["parameters"]:
                if "schema" in parameter:
                    parameter["schema"] = _inline(parameter["schema"], components)
                    _narrow(parameter["schema"])
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _inline(media["schema"], components)
                    _narrow(media["schema"])
