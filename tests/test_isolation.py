"""Tenant isolation and authentication, checked on EVERY route of the app.

The routes are enumerated from the app itself, so a route added tomorrow is walked tomorrow without
touching this file:

* every route except the public ones answers 401 with no credential, an expired token, a tampered token,
  an ``alg: none`` token and an unknown API key;
* every write route (POST/PUT/PATCH/DELETE) answers 403 to a read-only (viewer) credential;
* every route with path parameters answers 404 to account A when given account B's ids — and B's rows in
  every tenant table are byte-for-byte the same afterwards. B's ids come from ``ID_FACTORIES`` (path
  parameter name → a function creating one such object for B through the API, or through the code a worker
  runs where no API creates it: purchase orders, raw documents, loaded imports, cases), else from POSTing a
  schema-generated body to the parameter's collection route (``/v1/items`` for ``/v1/items/{item_id}``);
  a parameter neither can create fails the walk (random ids alone prove nothing), asking for an
  ``ID_FACTORIES`` entry. With the account's own ids the same routes find the object (reads answer 200).

Why a valid body matters: FastAPI resolves dependencies (authentication, scopes) before it validates the
body, so the 401/403 checks hold whatever the body; but a 404 can only come from the handler, which runs
only when the body is valid. Bodies are therefore generated from each operation's OpenAPI schema (examples
first); a route whose generated body is refused gets a clear failure asking for an entry in
``BODY_OVERRIDES`` rather than a silently skipped isolation check.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.models import Base
from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.accounts.factories import bearer, create_api_key, create_client, forge_token
from tests.catalog.factories import item_body
from tests.conftest import Tenant
from tests.stores.factories import store_body

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/oauth/token",
        "/.well-known/jwks.json",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

IdFactory = Callable[[httpx.AsyncClient, Tenant], Awaitable[str]]


async def _created_id(r: httpx.Response) -> str:
    assert r.status_code == 201, r.text
    created: str = r.json()["id"]
    return created


async def _store(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return await _created_id(await client.post("/v1/stores", json=store_body(), headers=tenant.headers()))


async def _api_key(client: httpx.AsyncClient, tenant: Tenant) -> str:
    created: str = (await create_api_key(client, tenant, role="viewer"))["id"]
    return created


async def _oauth_client(client: httpx.AsyncClient, tenant: Tenant) -> str:
    created: str = (await create_client(client, tenant, role="viewer"))["id"]
    return created


async def _connection(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return await _created_id(
        await client.post(
            "/v1/connections",
            json={
                "name": f"isolation-{uuid.uuid4().hex[:8]}",
                "region": "NA",
                "endpoint": "https://sandbox.sellingpartnerapi-na.amazon.com",  # never called: the run only queues
                "marketplaces": ["US"],
                "vendor_codes": ["ACME1"],
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
            },
            headers=tenant.headers(),
        )
    )


async def _start_sync(client: httpx.AsyncClient, tenant: Tenant, connection: str) -> str:
    r = await client.post(f"/v1/connections/{connection}/syncs", json={"kind": "orders"}, headers=tenant.headers())
    assert r.status_code == 202, r.text
    run: str = r.json()["id"]
    return run


async def _sync_run(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return await _start_sync(client, tenant, await _connection(client, tenant))


def _app(client: httpx.AsyncClient) -> Any:
    """The app behind the test client: its resources (the test's transaction) and settings, for the factories
    that run a job the way a worker would."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app


async def _purchase_order_and_document(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, str]:
    """A purchase order stored the way a sync stores one, minus the HTTP: a page of the simulator's orders is
    validated as the SP-API client does, archived as a raw document and upserted with that document's id (as
    ``sync._write_page``), for a connection and an orders sync run made through the API."""
    from acorn_api.amazon import sync, wire
    from acorn_api.amazon.repository import purchase_orders
    from acorn_api.core.time import utcnow
    from acorn_api.ledger.archive import raw_documents
    from acorn_sim import SimulatorConfig
    from acorn_sim.data import DataSet, order_json

    connection = await _connection(client, tenant)
    run = await _start_sync(client, tenant, connection)
    [order] = DataSet(SimulatorConfig(seed=uuid.uuid4().int % 2**31, purchase_orders=1, history_days=30)).orders
    raw = orjson.dumps({"payload": {"orders": [order_json(order)]}})
    page = wire.PURCHASE_ORDERS_PAGE.validate_json(raw)["payload"]
    assert page is not None
    headers, items = sync.order_rows(page["orders"])
    async with _app(client).state.resources.sessionmaker() as session:
        archived = await raw_documents.store(
            session,
            tenant.id,
            raw,
            source="sp-api:getPurchaseOrders",
            fetched_at=utcnow(),
            metadata={"connection_id": connection, "sync_run_id": run},
        )
        counts = await purchase_orders.upsert_page(
            session,
            tenant.id,
            connection_id=uuid.UUID(connection),
            sync_run_id=uuid.UUID(run),
            raw_document_id=archived.id,
            orders=headers,
            items=items,
        )
        assert counts.created == 1, counts
        await session.commit()
    return order.number, str(archived.id)


async def _purchase_order(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return (await _purchase_order_and_document(client, tenant))[0]


async def _raw_document(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return (await _purchase_order_and_document(client, tenant))[1]


@dataclass(frozen=True)
class Imported:
    import_id: str
    invoice_number: str
    payment_number: str


async def _remittance_import(client: httpx.AsyncClient, tenant: Tenant) -> Imported:
    """A remittance uploaded through POST /v1/imports and loaded by the import job, as a worker runs it: one
    payment of one invoice (plus the file's deduction lines)."""
    from acorn_api.ledger import jobs
    from tests.ledger import files

    payment = f"P{uuid.uuid4().hex[:10].upper()}"
    first_invoice = 100_000 + uuid.uuid4().int % 800_000
    content = files.to_csv(files.remittance(payment=payment, invoices=1, start=first_invoice).rows).encode()
    r = await client.post(
        "/v1/imports",
        files={"file": ("remittance.csv", content)},
        data={"report_type": "remittance"},
        headers=tenant.headers(),
    )
    assert r.status_code == 202, r.text
    import_id: str = r.json()["id"]
    app = _app(client)
    resources = app.state.resources
    ctx = {"sessionmaker": resources.sessionmaker, "redis": resources.redis, "settings": app.state.settings}
    assert await jobs.load_import(ctx, str(tenant.id), import_id) == "succeeded"
    return Imported(import_id, str(first_invoice), payment)


async def _import(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return (await _remittance_import(client, tenant)).import_id


async def _invoice(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return (await _remittance_import(client, tenant)).invoice_number


async def _payment(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return (await _remittance_import(client, tenant)).payment_number


async def _webhook_endpoint(client: httpx.AsyncClient, tenant: Tenant) -> str:
    # loopback is allowed in the test environment (nothing listens on port 9; nothing is delivered here)
    body = {"url": "http://127.0.0.1:9/hook", "event_types": "*"}
    return await _created_id(await client.post("/v1/webhook-endpoints", json=body, headers=tenant.headers()))


async def _event(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """An event made the way integrators see them: a quote submitted through the API."""
    item = await _created_id(
        await client.post(
            "/v1/items",
            json=item_body(),
            headers=tenant.headers(),
        )
    )
    quote = await client.post(
        "/v1/quotes",
        json={
            "item_id": item,
            "region": "NA",
            "currency": "USD",
            "cost_price": "10.00",
            "effective_from": (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        },
        headers=tenant.headers(),
    )
    assert quote.status_code == 201, quote.text
    r = await client.post(
        f"/v1/quotes/{quote.json()['id']}/submit", json={"version": quote.json()["version"]}, headers=tenant.headers()
    )
    assert r.status_code == 200, r.text
    events = await client.get("/v1/events", params={"type": "quote.submitted"}, headers=tenant.headers())
    found: str = events.json()["data"][0]["id"]
    return found


async def _refund_case(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """A case the way production makes them: a deduction in the ledger, then the case job (no API creates one).

    It runs on the app's own resources, so inside the test's transaction like every request."""
    from acorn_api.refunds.jobs import open_refund_cases
    from acorn_api.refunds.models import RefundCase
    from tests.refunds.factories import make_entry

    resources = _app(client).state.resources
    async with resources.sessionmaker() as session:
        entry = await make_entry(session, tenant.id)
    await open_refund_cases({"sessionmaker": resources.sessionmaker, "redis": resources.redis}, str(tenant.id))
    async with resources.sessionmaker() as session:
        case = await session.scalar(
            select(RefundCase.id).where(RefundCase.account_id == tenant.id, RefundCase.origin_entry_id == entry.id)
        )
    assert case is not None
    return str(case)


# Path parameter name → how to create one such object for account B. Add yours next to your resource.
ID_FACTORIES: dict[str, IdFactory] = {
    "store_id": _store,
    "api_key_id": _api_key,
    "oauth_client_id": _oauth_client,
    "run_id": _sync_run,
    "endpoint_id": _webhook_endpoint,
    "event_id": _event,
    "case_id": _refund_case,
    "po_number": _purchase_order,
    "document_id": _raw_document,
    "import_id": _import,
    "invoice_number": _invoice,
    "payment_number": _payment,
}

# operation_id → a JSON body the route accepts, for schemas the generator below cannot satisfy.
BODY_OVERRIDES: dict[str, Any] = {}

# path parameter → fields to add to the generated creation body, for rules the schema cannot express. A
# creation that still fails only costs that resource its real-id check (it falls back to random ids).
CREATE_EXTRAS: dict[str, dict[str, Any]] = {
    "quote_id": {"region": "NA"},  # a quote is for a store or a region
}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    operation: dict[str, Any] | None  # the OpenAPI operation, when the route is in the schema

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{([^}:]+)(?::[^}]+)?\}", self.path)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


def _walk() -> tuple[list[Op], dict[str, Any]]:
    app = create_app(Settings(environment="test", log_json=False, log_level="WARNING"))
    schema = app.openapi()
    ops: list[Op] = []
    for context in iter_route_contexts(app.routes):
        for method in sorted((context.methods or set()) - {"HEAD", "OPTIONS"}):
            documented = re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", context.path)  # {id:uuid} → {id}
            operation = schema.get("paths", {}).get(documented, {}).get(method.lower())
            ops.append(Op(method, context.path, operation))
    return ops, schema


OPS, SCHEMA = _walk()
PROTECTED = [op for op in OPS if op.path not in PUBLIC_PATHS]
WRITES = [op for op in PROTECTED if op.is_write]
WITH_IDS = [op for op in PROTECTED if op.params]


def test_the_walk_found_the_routes_we_know() -> None:
    ids = {op.id for op in PROTECTED}
    assert {"GET /v1/stores/{store_id}", "DELETE /v1/api-keys/{api_key_id}", "GET /v1/audit-events"} <= ids


# --- request building ------------------------------------------------------------------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = SCHEMA["components"]["schemas"][name]
    return schema


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "uuid":
        return str(uuid.uuid4())
    if fmt == "date-time":
        return (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    if fmt == "date":
        return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    if fmt == "email":
        return "walker@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/hook"
    if "pattern" in schema:
        from hypothesis import strategies
        from hypothesis.errors import NonInteractiveExampleWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonInteractiveExampleWarning)
            value: str = (
                strategies.from_regex(schema["pattern"], fullmatch=True)
                .filter(lambda s: schema.get("minLength", 0) <= len(s) <= schema.get("maxLength", 10**6))
                .example()
            )
        return value
    return "x" * max(schema.get("minLength", 1), 1)


def sample(schema: dict[str, Any]) -> Any:
    """A small value that satisfies ``schema`` (required fields only), preferring documented examples."""
    schema = _resolve(schema)
    if schema.get("examples"):
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "properties" in schema:
        props = schema["properties"]
        required = list(schema.get("required", []))
        for key in ("oneOf", "anyOf"):  # e.g. "exactly one of role and scopes": take the first choice
            if schema.get(key):
                required += schema[key][0].get("required", [])
        return {name: sample(props[name]) for name in required if name in props}
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o).get("type") != "null"]
            return sample(options[0]) if options else None
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(part)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: sample(props[name]) for name in schema.get("required", []) if name in props}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [sample(schema.get("items", {})) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema)
    return None


def _body(op: Op) -> Any:
    if op.operation is None:
        return {} if op.is_write else None
    operation_id = op.operation.get("operationId")
    if operation_id in BODY_OVERRIDES:
        return BODY_OVERRIDES[operation_id]
    content = op.operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return sample(content["application/json"].get("schema", {}))
    return None


def _query(op: Op) -> dict[str, Any]:
    params = (op.operation or {}).get("parameters", [])
    return {p["name"]: sample(p.get("schema", {})) for p in params if p.get("in") == "query" and p.get("required")}


def _url(op: Op, ids: dict[str, str]) -> str:
    url = op.path
    for name in op.params:
        value = ids.get(name) or str(uuid.uuid4())
        url = re.sub(r"\{" + re.escape(name) + r"(?::[^}]+)?\}", value, url)
    return url


async def call(
    client: httpx.AsyncClient, op: Op, headers: dict[str, str], ids: dict[str, str] | None = None
) -> httpx.Response:
    body = _body(op)
    return await client.request(
        op.method,
        _url(op, ids or {}),
        params=_query(op),
        json=body if body is not None else None,
        headers=headers,
    )


# --- 401: no credential, or a bad one ----------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def _bad_credentials(client: httpx.AsyncClient, tenant: Tenant, settings: Settings) -> dict[str, dict[str, str]]:
    # Forged locally with the app's real key: no token endpoint calls (its per-address limit is for clients).
    oauth = await create_client(client, tenant, role="admin")
    claims = {"sub": oauth["client_id"], "client_id": oauth["client_id"], "account_id": str(tenant.id)}
    token = forge_token(settings, scope="stores:read", **claims)
    header, payload, signature = token.split(".")
    past = int(time.time()) - 7200
    expired = forge_token(settings, scope="admin", iat=past, nbf=past, exp=past + 900, **claims)
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = f"{header}.{_b64({**tampered_claims, 'scope': 'admin'})}.{signature}"
    alg_none = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{payload}."
    return {
        "none": {},
        "expired": bearer(expired),
        "tampered": bearer(tampered),
        "alg_none": bearer(alg_none),
        "unknown_api_key": bearer("acn_abcdefghijkm_" + "x" * 43),
        "not_bearer": {"Authorization": f"Basic {base64.b64encode(b'a:b').decode()}"},
    }


@pytest.mark.parametrize("op", PROTECTED, ids=lambda op: op.id)
async def test_bad_or_missing_credentials_are_401(
    client: httpx.AsyncClient, account: Tenant, settings: Settings, op: Op
) -> None:
    for kind, headers in (await _bad_credentials(client, account, settings)).items():
        r = await call(client, op, headers)
        assert r.status_code == 401, f"{op.id} with {kind} credential: {r.status_code} {r.text}"
        assert r.headers["content-type"] == "application/problem+json", kind
        assert r.headers["www-authenticate"].startswith("Bearer"), kind


# --- 403: a read-only credential on a write route -------------------------------------------------------------


@pytest.mark.parametrize("op", WRITES, ids=lambda op: op.id)
async def test_viewer_cannot_write(client: httpx.AsyncClient, account: Tenant, op: Op) -> None:
    r = await call(client, op, account.headers(account.keys["viewer"]))
    assert r.status_code == 403, f"{op.id} as viewer: {r.status_code} {r.text}"
    assert r.json()["type"].endswith("/insufficient-scope")


# --- 404: another account's ids, and nothing changes -------------------------------------------------------------


async def _fingerprint(session: AsyncSession, account_id: uuid.UUID) -> dict[str, str]:
    """A hash of every row of the account in every tenant table."""
    prints: dict[str, str] = {}
    for table in Base.metadata.sorted_tables:
        if "account_id" not in table.c:
            continue
        prints[table.name] = await session.scalar(
            text(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f'FROM "{table.name}" t WHERE account_id = :account'
            ),
            {"account": account_id},
        )
    return prints


def _collection_post(name: str) -> Op | None:
    """The POST that creates what ``{name}`` names: the path up to that parameter, e.g. POST /v1/items."""
    for op in OPS:
        if name in op.params:
            prefix = re.split(r"/\{" + re.escape(name) + r"(?::[^}]+)?\}", op.path, maxsplit=1)[0]
            found = next((o for o in OPS if o.method == "POST" and o.path == prefix and o.operation), None)
            if found is not None:
                return found
    return None


async def _create(client: httpx.AsyncClient, tenant: Tenant, name: str, ids: dict[str, str], depth: int = 0) -> None:
    """Give ``ids[name]`` a real object of ``tenant``: from ID_FACTORIES, else by POSTing a schema-generated
    body to the collection route, with the body's own ``*_id`` references created first (e.g. a quote's item)."""
    if name in ids or depth > 3:
        return
    if name in ID_FACTORIES:
        ids[name] = await ID_FACTORIES[name](client, tenant)
        return
    create = _collection_post(name)
    if create is None:
        return
    body = _body(create)
    if isinstance(body, dict):
        body.update(CREATE_EXTRAS.get(name, {}))
        for field in [f for f in body if f.endswith("_id") and f != name]:
            await _create(client, tenant, field, ids, depth + 1)
            if field in ids:
                body[field] = ids[field]
    for param in create.params:
        await _create(client, tenant, param, ids, depth + 1)
    r = await client.request(
        "POST",
        _url(create, ids),
        params=_query(create),
        json=body,
        headers={**tenant.headers(), "Idempotency-Key": uuid.uuid4().hex},
    )
    if r.status_code in (200, 201, 202) and isinstance(r.json().get("id"), str):
        ids[name] = r.json()["id"]


async def _ids_of(client: httpx.AsyncClient, tenant: Tenant, op: Op) -> dict[str, str]:
    """Ids of real objects of ``tenant`` for the route's parameters (those that cannot be made are left out,
    and get a random id)."""
    ids: dict[str, str] = {}
    for name in op.params:
        await _create(client, tenant, name, ids)
    return {name: ids[name] for name in op.params if name in ids}


def _refused_body(r: httpx.Response) -> bool:
    return r.status_code == 422 and any(e.get("loc", [None])[0] == "body" for e in r.json().get("errors") or [])


def _missing(op: Op, ids: dict[str, str]) -> str:
    missing = [p for p in op.params if p not in ids]
    return (
        f"{op.id}: cannot create {missing} through its collection route; add an ID_FACTORIES entry in "
        "tests/test_isolation.py so the route is walked with real objects, not random ids"
    )


@pytest.mark.parametrize("op", WITH_IDS, ids=lambda op: op.id)
async def test_other_accounts_ids_are_404_and_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, other_account: Tenant, op: Op
) -> None:
    theirs = await _ids_of(client, other_account, op)
    assert set(theirs) == set(op.params), _missing(op, theirs)
    before = await _fingerprint(session, other_account.id)
    r = await call(client, op, account.headers(), theirs)
    assert not _refused_body(r), (
        f"{op.id}: the generated body was refused ({r.text}); add a valid body for operation "
        f"{(op.operation or {}).get('operationId')!r} to BODY_OVERRIDES in tests/test_isolation.py"
    )
    assert r.status_code == 404, f"{op.id} with account B's ids {theirs}: {r.status_code} {r.text}"
    assert await _fingerprint(session, other_account.id) == before, f"{op.id} changed account B's data"


@pytest.mark.parametrize("op", WITH_IDS, ids=lambda op: op.id)
async def test_unknown_ids_are_404(client: httpx.AsyncClient, account: Tenant, op: Op) -> None:
    r = await call(client, op, account.headers())
    assert not _refused_body(r), f"{op.id}: the generated body was refused ({r.text}); see BODY_OVERRIDES"
    assert r.status_code == 404, f"{op.id} with random ids: {r.status_code} {r.text}"


@pytest.mark.parametrize("op", WITH_IDS, ids=lambda op: op.id)
async def test_own_ids_are_not_404(client: httpx.AsyncClient, account: Tenant, op: Op) -> None:
    """The control for the 404 test: with the account's own ids, the route finds the object (a read answers
    200; a write may still be refused for its state, e.g. 409, but not with 404)."""
    mine = await _ids_of(client, account, op)
    assert set(mine) == set(op.params), _missing(op, mine)
    r = await call(client, op, account.headers(), mine)
    if op.method == "GET":
        assert r.status_code == 200, f"{op.id} with the account's own ids {mine}: {r.status_code} {r.text}"
    else:
        assert r.status_code != 404, f"{op.id} with the account's own ids {mine}: {r.text}"
