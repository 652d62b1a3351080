"""OWASP API3 (broken object property level authorization): mass assignment and excessive data exposure.

* **Mass assignment**: every JSON body the API takes forbids unknown fields, so a client can never set
  ``account_id``, ``status`` (where the resource's workflow owns it), ``recovered_amount``, ``version`` on a
  creation, ``id`` or timestamps: each such field added to a valid body is a 422 naming exactly that field,
  and nothing is written.
* **Exposure**: secrets are shown once, in the answer that creates or rotates them, and never again; their
  stored forms (hashes, ciphertexts) never. A run creates every kind of secret the API knows (API keys and
  their rolls, OAuth client secrets and their rotations, webhook signing secrets and their rotations, an
  Amazon connection's client id, client secret and refresh token, the OAuth access token), then reads every
  GET route with real ids; every response body of the run (except each secret's own one-time answer) is
  scanned for every secret value and every stored hash or ciphertext.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.accounts.factories import basic, create_api_key, create_client
from tests.conftest import Tenant
from tests.test_isolation import OPS, SCHEMA, Op, _fingerprint, _ids_of, _query, _resolve, _url, sample

# fields a client must never set, with a value of a plausible type
FORBIDDEN_FIELDS: dict[str, Any] = {
    "account_id": str(uuid.uuid4()),
    "id": str(uuid.uuid4()),
    "status": "approved",
    "recovered_amount": {"amount": "1000000.00", "currency": "USD"},
    "version": 1,
    "created_at": "2020-01-01T00:00:00Z",
    "updated_at": "2020-01-01T00:00:00Z",
    "created_by": "attacker",
    "secret_hash": "x",
}


def _json_body_schema(op: Op) -> dict[str, Any] | None:
    content = (op.operation or {}).get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = _resolve(content["application/json"]["schema"])
    for key in ("anyOf", "oneOf"):  # an optional body: its object alternative
        if key in schema and "properties" not in schema:
            objects = [_resolve(s) for s in schema[key] if _resolve(s).get("type") != "null"]
            schema = objects[0] if objects else schema
    return schema


JSON_BODIES = [op for op in OPS if _json_body_schema(op) is not None]


def test_every_json_body_forbids_unknown_fields() -> None:
    open_bodies = [op.id for op in JSON_BODIES if _json_body_schema(op).get("additionalProperties") is not False]  # type: ignore[union-attr]
    assert not open_bodies


@pytest.mark.parametrize("op", JSON_BODIES, ids=lambda op: op.id)
async def test_fields_a_client_must_not_set_are_422_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, account: Tenant, op: Op
) -> None:
    schema = _json_body_schema(op)
    assert schema is not None
    allowed = set(schema.get("properties", {}))
    ids = await _ids_of(client, account, op)
    base = sample(schema)
    for name, value in FORBIDDEN_FIELDS.items():
        if name in allowed:  # a documented, writable field (a store's status, an update's version)
            continue
        before = await _fingerprint(session, account.id)
        r = await client.request(
            op.method,
            _url(op, ids),
            params=_query(op),
            json={**base, name: value},
            headers={**account.headers(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 422, f"{op.id} with {name}: {r.status_code} {r.text}"
        assert ["body", name] in [e["loc"] for e in r.json()["errors"]], f"{op.id} with {name}: {r.text}"
        assert await _fingerprint(session, account.id) == before, f"{op.id} with {name} wrote something"


# --- secrets never leave twice ---------------------------------------------------------------------------


class Recorder:
    """Every response body of the client, with the request that got it."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.bodies.append((f"{response.request.method} {response.request.url.path}", response.text))


async def _stored_secrets(session: AsyncSession, account_id: uuid.UUID) -> set[str]:
    """What the database keeps instead of the secrets: hashes (as text) and ciphertexts (hex and base64)."""
    import base64

    found: set[str] = set()
    queries = [
        "SELECT secret_hash FROM api_keys WHERE account_id = :a",
        "SELECT previous_secret_hash FROM api_keys WHERE account_id = :a AND previous_secret_hash IS NOT NULL",
        "SELECT secret_hash FROM oauth_clients WHERE account_id = :a",
    ]
    for query in queries:
        found |= {v for v in (await session.scalars(text(query), {"a": account_id})).all() if v}
    binary = [
        "SELECT secret_encrypted FROM webhook_endpoints WHERE account_id = :a",
        "SELECT lwa_client_id_encrypted FROM vendor_connections WHERE account_id = :a",
        "SELECT lwa_client_secret_encrypted FROM vendor_connections WHERE account_id = :a",
        "SELECT lwa_refresh_token_encrypted FROM vendor_connections WHERE account_id = :a",
    ]
    for query in binary:
        for value in (await session.scalars(text(query), {"a": account_id})).all():
            raw = bytes(value)
            found |= {raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
            found |= {raw[:24].hex()}  # a prefix is a leak too
    return found


async def test_no_secret_hash_or_ciphertext_in_any_response(app: Any, session: AsyncSession, account: Tenant) -> None:
    recorder = Recorder()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    secrets: dict[str, str] = {}  # value → what it is
    one_time: dict[str, int] = {}  # value → index of the response allowed to show it
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", event_hooks={"response": [recorder]}
    ) as client:

        def shown(value: str, what: str) -> None:
            secrets[value] = what
            one_time[value] = len(recorder.bodies) - 1

        key = await create_api_key(client, account, role="viewer")
        shown(key["key"], "API key")
        rolled = await client.post(f"/v1/api-keys/{key['id']}/roll", json={}, headers=account.headers())
        assert rolled.status_code in (200, 201), rolled.text
        shown(rolled.json()["key"], "rolled API key")
        oauth = await create_client(client, account, role="viewer")
        shown(oauth["client_secret"], "OAuth client secret")
        rotated = await client.post(f"/v1/oauth-clients/{oauth['id']}/rotate-secret", headers=account.headers())
        assert rotated.status_code in (200, 201), rotated.text
        shown(rotated.json()["client_secret"], "rotated OAuth client secret")
        token = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(oauth["client_id"], rotated.json()["client_secret"]),
        )
        assert token.status_code == 200, token.text
        shown(token.json()["access_token"], "OAuth access token")
        hook = await client.post(
            "/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hook", "event_types": "*"},
            headers=account.headers(),
        )
        assert hook.status_code == 201, hook.text
        shown(hook.json()["secret"], "webhook signing secret")
        again = await client.post(
            f"/v1/webhook-endpoints/{hook.json()['id']}/rotate-secret", json={}, headers=account.headers()
        )
        assert again.status_code == 200, again.text
        shown(again.json()["secret"], "rotated webhook signing secret")
        lwa = {
            "client_id": f"amzn1.application-oa2-client.{uuid.uuid4().hex}",
            "client_secret": f"amzn1.oa2-cs.v1.{uuid.uuid4().hex}",
            "refresh_token": f"Atzr|{uuid.uuid4().hex}{uuid.uuid4().hex}",
        }
        connection = await client.post(
            "/v1/connections",
            json={
                "name": "Leak check",
                "region": "NA",
                "endpoint": "https://sandbox.sellingpartnerapi-na.amazon.com",
                "marketplaces": ["US"],
                "vendor_codes": ["ACME1"],
                **lwa,
            },
            headers=account.headers(),
        )
        assert connection.status_code == 201, connection.text
        for name, value in lwa.items():
            secrets[value] = f"connection {name}"  # never shown, not even on creation
        # now read everything there is to read, with real ids
        ids = {
            "api_key_id": key["id"],
            "oauth_client_id": oauth["id"],
            "endpoint_id": hook.json()["id"],
            "connection_id": connection.json()["id"],
        }
        for op in OPS:
            if op.method != "GET" or op.path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
                continue
            if op.params and not set(op.params) <= set(ids):
                continue
            await client.get(_url(op, ids), params=_query(op), headers=account.headers())
        # and the audit log in full, the place a careless change would copy a secret into
        await client.get("/v1/audit-events", params={"limit": 100}, headers=account.headers())

    stored = await _stored_secrets(session, account.id)
    stored |= {account.admin_key}
    assert len(recorder.bodies) > 40
    leaks = []
    for index, (request, body) in enumerate(recorder.bodies):
        for value, what in secrets.items():
            if value in body and one_time.get(value) != index:
                leaks.append(f"{what} in the answer to {request}")
        for value in stored:
            if value and value in body:
                leaks.append(f"a stored secret form ({value[:12]}…) in the answer to {request}")
        if re.search(r"\$argon2|\$2[aby]\$|pbkdf2", body):
            leaks.append(f"something hash-like in the answer to {request}")
    assert not leaks, leaks
    assert not [s for s in SCHEMA["components"]["schemas"] if re.search(r"hash|encrypted", s, re.I)]
