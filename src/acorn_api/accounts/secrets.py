"""Credential secrets: generation and keyed hashing.

API keys and client secrets are 256-bit random values, so a brute-force search of the hash is hopeless
whatever the hash costs; a slow password hash (argon2) would only add ~50 ms to every request. They are
stored as HMAC-SHA256 under a server-side pepper (``ACORN_API_KEY_PEPPER``): a stolen table is useless
without the pepper, and checking costs microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"  # no look-alikes (l, 1, 0)


@dataclass(frozen=True)
class IssuedSecret:
    prefix: str
    secret: str  # the full value the client sends; shown once

    def __repr__(self) -> str:  # never print a secret by accident
        return f"IssuedSecret(prefix={self.prefix!r}, secret='***')"


def new_secret(kind: str) -> IssuedSecret:
    """``kind`` is the visible type tag, e.g. ``acn`` for API keys; the prefix identifies the row."""
    public = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    prefix = f"{kind}_{public}"
    return IssuedSecret(prefix=prefix, secret=f"{prefix}_{secrets.token_urlsafe(32)}")


def renew_secret(prefix: str) -> IssuedSecret:
    """A fresh secret under an existing prefix: a rolled API key or a rotated client secret keeps its id."""
    return IssuedSecret(prefix=prefix, secret=f"{prefix}_{secrets.token_urlsafe(32)}")


def split_prefix(secret: str) -> str | None:
    parts = secret.split("_", 2)
    if len(parts) != 3 or not parts[0] or len(parts[1]) != 12:
        return None
    return f"{parts[0]}_{parts[1]}"


def hash_secret(secret: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def verify_secret(secret: str, expected_hash: str, pepper: str) -> bool:
    return hmac.compare_digest(hash_secret(secret, pepper), expected_hash)
