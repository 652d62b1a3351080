"""Factories and steps for quote tests: each states only what matters to the test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.catalog.factories import item_body
from tests.conftest import Tenant
from tests.stores.factories import store_body


def future(days: float = 1, *, base: datetime | None = None) -> datetime:
    start = base or datetime.now(UTC).replace(microsecond=0)
    return start + timedelta(days=days)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass
class Quotes:
    """Drives the API as a tenant's credentials: purchasing drafts and submits, finance approves."""

    client: httpx.AsyncClient
    tenant: Tenant

    def as_(self, role: str | None) -> dict[str, str]:
        return self.tenant.headers(self.tenant.keys[role] if role and role != "admin" else None)

    async def item(self, **overrides: Any) -> dict[str, Any]:
        r = await self.client.post("/v1/items", json=item_body(**overrides), headers=self.as_("admin"))
        assert r.status_code == 201, r.text
        return r.json()

    async def store(self, code: str, **overrides: Any) -> dict[str, Any]:
        r = await self.client.post("/v1/stores", json=store_body(code=code, **overrides), headers=self.as_("admin"))
        assert r.status_code == 201, r.text
        return r.json()

    async def draft(self, item: dict[str, Any], *, role: str = "purchasing", **overrides: Any) -> httpx.Response:
        body: dict[str, Any] = {
            "item_id": item["id"],
            "currency": "USD",
            "cost_price": "10.00",
            "effective_from": iso(future(1)),
        }
        body.update(overrides)
        return await self.client.post("/v1/quotes", json=body, headers=self.as_(role))

    async def drafted(self, item: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        r = await self.draft(item, **overrides)
        assert r.status_code == 201, r.text
        return r.json()

    async def act(self, quote: dict[str, Any], action: str, *, role: str, **body: Any) -> httpx.Response:
        payload = {"version": quote["version"], **body}
        return await self.client.post(f"/v1/quotes/{quote['id']}/{action}", json=payload, headers=self.as_(role))

    async def submitted(self, item: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        quote = await self.drafted(item, **overrides)
        r = await self.act(quote, "submit", role="purchasing")
        assert r.status_code == 200, r.text
        return r.json()

    async def approved(self, item: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        quote = await self.submitted(item, **overrides)
        r = await self.act(quote, "approve", role="finance", acknowledge_conflicts=True)
        assert r.status_code == 200, r.text
        return r.json()

    async def effective(self, item: dict[str, Any], store: dict[str, Any], at: datetime) -> httpx.Response:
        return await self.client.get(
            "/v1/prices/effective",
            params={"item_id": item["id"], "store_id": store["id"], "at": iso(at)},
            headers=self.as_("viewer"),
        )
