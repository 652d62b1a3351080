"""The JWT signing keys and the JWKS that publishes their public halves.

Keys come from ``ACORN_JWT_PRIVATE_KEYS_PEM`` (newest first). Without it, development reads (or creates)
``ACORN_JWT_KEYS_FILE``, and tests or a bare process fall back to one key generated in memory.

**RS256, not ES256.** Every authenticated request verifies a token and only ``POST /oauth/token`` signs one;
on this machine joserfc verifies RS256 in ~65 µs and ES256 in ~140 µs (signing is the other way round,
~600 µs vs ~80 µs). RS256 is also the one algorithm RFC 9068 requires every resource server to support.

**Rotation.** Put a new key first and keep the old one listed: new tokens are signed with the first key;
tokens signed by any listed key verify (their ``kid`` picks the key) until the old key is removed, which
should happen no sooner than one token lifetime after the new key became first.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey

from acorn_api.settings import Settings

ALGORITHM = "RS256"
RSA_KEY_BITS = 2048
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)

log = structlog.get_logger(__name__)


def generate_private_key_pem() -> str:
    """A new RSA private key as PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass(eq=False)
class KeyRing:
    """The signing key (the first one) and every key that still verifies, by ``kid``."""

    signing_key: RSAKey
    verification_keys: dict[str, RSAKey]
    jwks: dict[str, Any]
    # Tokens this ring has already verified (token → claims), so a client reusing its token costs a dict
    # lookup, not an RSA verification. Belongs to the ring: dropping a key drops what it vouched for.
    verified: dict[str, Any] = field(default_factory=dict)

    @property
    def kid(self) -> str:
        return str(self.signing_key.kid)

    @property
    def key_set(self) -> KeySet:
        return KeySet(list(self.verification_keys.values()))


def _public(key: RSAKey) -> RSAKey:
    public = RSAKey.import_key(key.as_dict(private=False))
    public.ensure_kid()
    return public


def build_key_ring(pems: list[str]) -> KeyRing:
    if not pems:
        raise ValueError("at least one JWT signing key is needed")
    private_keys: list[RSAKey] = []
    for pem in pems:
        key = RSAKey.import_key(pem)
        if not key.is_private:
            raise ValueError("JWT signing keys must be private keys")
        key.ensure_kid()  # RFC 7638 thumbprint: stable across restarts and processes
        private_keys.append(key)
    public_keys = [_public(k) for k in private_keys]
    jwks = {"keys": [{**k.as_dict(private=False), "kid": k.kid, "use": "sig", "alg": ALGORITHM} for k in public_keys]}
    return KeyRing(
        signing_key=private_keys[0],
        verification_keys={str(k.kid): k for k in public_keys},
        jwks=jwks,
    )


def read_keys_file(path: Path) -> list[str]:
    """The PEM blocks of a keys file, newest first; the file is created with one new key if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside, then link into place: a concurrent reader never sees half a key, and of two
        # processes starting at once one wins and both use its key.
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-key-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_private_key_pem())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
                log.info("jwt_signing_key_generated", path=str(path))
        finally:
            os.unlink(temp)
    blocks = _PEM_BLOCK.findall(path.read_text())
    if not blocks:
        raise ValueError(f"{path} holds no PEM private key")
    return list(blocks)


_lock = threading.Lock()
_rings: dict[tuple[tuple[str, ...], str | None], KeyRing] = {}
_ephemeral_pem: list[str] = []


def _ephemeral() -> list[str]:
    if not _ephemeral_pem:
        log.warning("jwt_ephemeral_signing_key", detail="no JWT keys configured; tokens die with this process")
        _ephemeral_pem.append(generate_private_key_pem())
    return list(_ephemeral_pem)


def key_ring(settings: Settings) -> KeyRing:
    """The ring for these settings, built once per process (PEM parsing and file reads are not per request)."""
    configured = tuple(k.get_secret_value() for k in settings.jwt_private_keys_pem)
    cache_key = (configured, None if configured else settings.jwt_keys_file)
    ring = _rings.get(cache_key)
    if ring is not None:
        return ring
    with _lock:
        ring = _rings.get(cache_key)
        if ring is None:
            if configured:
                pems = list(configured)
            elif settings.jwt_keys_file:
                pems = read_keys_file(Path(settings.jwt_keys_file))
            else:
                pems = _ephemeral()
            ring = _rings[cache_key] = build_key_ring(pems)
    return ring
