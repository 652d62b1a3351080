from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from acorn_api.settings import Settings


def test_plain_postgresql_url_gets_the_async_driver() -> None:
    s = Settings(database_url="postgresql://u:p@db:5432/acorn?sslmode=require")
    assert s.database_url == "postgresql+asyncpg://u:p@db:5432/acorn?ssl=require"


def test_non_postgres_database_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="only PostgreSQL"):
        Settings(database_url="mysql://u:p@db/acorn")


def test_valkey_scheme_is_accepted_as_redis() -> None:
    assert Settings(redis_url="valkey://127.0.0.1:6380").redis_url == "redis://127.0.0.1:6380"


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(environment="production", database_url="postgresql://db/a", redis_url="redis://r:6379/0")
    message = str(info.value)
    assert "ACORN_API_KEY_PEPPER" in message
    assert "ACORN_ENCRYPTION_KEYS" in message


def test_production_starts_with_real_secrets() -> None:
    s = Settings(
        environment="production",
        database_url="postgresql://db/a",
        redis_url="redis://r:6379/0",
        api_key_pepper=SecretStr("a-real-pepper-from-a-vault"),
        encryption_keys=[SecretStr("cmVhbC1rZXktMzItYnl0ZXMtbG9uZy4uLi4uLi4uLi4=")],
        jwt_private_keys_pem=[SecretStr("-----BEGIN PRIVATE KEY-----...")],
    )
    assert s.is_production
