"""Webhook signatures: ``Acorn-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``.

The HMAC key is the endpoint's secret exactly as shown at creation (``whsec_...``), as UTF-8 bytes.
During a secret rotation the header carries one ``v1`` per valid secret (new first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Acorn-Signature"
EVENT_ID_HEADER = "Acorn-Event-Id"
EVENT_TYPE_HEADER = "Acorn-Event-Type"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, payload: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()


def sign(payload: bytes, secrets_: Sequence[str], timestamp: int | None = None) -> str:
    """The header value for ``payload`` signed with each secret (at least one)."""
    if not secrets_:
        raise ValueError("at least one secret is needed to sign")
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={_mac(s, t, payload)}" for s in secrets_)])


def verify(payload: bytes, header: str, secret: str, tolerance: int = 300, *, now: int | None = None) -> bool:
    """True when ``header`` holds a ``v1`` signature of ``payload`` by ``secret`` made within ``tolerance``
    seconds of now (either side); False for anything else (no exception: malformed headers are False).

    ``payload`` must be the raw request body, byte for byte, not a re-serialised parse of it.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, payload)
    return any(hmac.compare_digest(expected, c) for c in candidates)
