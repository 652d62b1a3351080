from __future__ import annotations

from typing import Any


def store_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "NYC-01",
        "name": "New York DC",
        "region": "NA",
        "marketplace": "US",
        "country": "US",
        "currency": "USD",
        "timezone": "America/New_York",
        "vendor_codes": ["ACME1"],
        "metadata": {"erp_id": "4711"},
    }
    body.update(overrides)
    return body
