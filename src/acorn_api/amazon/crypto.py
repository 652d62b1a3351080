"""Encryption at rest of connection secrets (LWA client id, client secret, refresh token).

``MultiFernet`` over ``settings.encryption_keys``: the first key encrypts, every key decrypts.

Key rotation, without downtime:

1. Put the new key *first* in ``ACORN_ENCRYPTION_KEYS`` and keep the old one after it; deploy. New writes
   use the new key, old ciphertexts still decrypt.
2. Re-encrypt what is stored: run the ``reencrypt_connection_secrets`` job (``vendor.jobs``), which
   rewrites every connection's secrets under the first key (``MultiFernet.rotate``); it is idempotent.
3. Drop the old key from the list; deploy.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from acorn_api.settings import Settings


class SecretsUnreadable(Exception):
    """No configured key decrypts a stored secret (a key was dropped before re-encryption)."""


def cipher(settings: Settings) -> MultiFernet:
    keys = [Fernet(key.get_secret_value().encode()) for key in settings.encryption_keys]
    if not keys:
        raise RuntimeError("no encryption key configured: set ACORN_ENCRYPTION_KEYS")
    return MultiFernet(keys)


def encrypt(settings: Settings, plaintext: str) -> bytes:
    return cipher(settings).encrypt(plaintext.encode())


def decrypt(settings: Settings, ciphertext: bytes) -> str:
    try:
        return cipher(settings).decrypt(bytes(ciphertext)).decode()
    except InvalidToken as exc:
        raise SecretsUnreadable("no configured encryption key decrypts this secret") from exc


def rotate(settings: Settings, ciphertext: bytes) -> bytes:
    """The same secret encrypted under the first key."""
    try:
        return cipher(settings).rotate(bytes(ciphertext))
    except InvalidToken as exc:
        raise SecretsUnreadable("no configured encryption key decrypts this secret") from exc
