"""One settings class for the whole service, read from the environment (prefix ``ACORN_``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

DEV_API_KEY_PEPPER = "acorn-dev-pepper-not-for-production"
DEV_ENCRYPTION_KEY = "ZGV2LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24tMDAwMDA="  # Fernet key, dev only

Environment = Literal["development", "test", "staging", "production"]


def to_async_database_url(url: str) -> str:
    """Turn the URL a user writes (``postgresql://...``) into the asyncpg form SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("only PostgreSQL URLs are supported (postgresql://user:pass@host:port/db)")
    query = dict(parsed.query)
    # libpq's sslmode is spelled ssl for asyncpg.
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return parsed.set(drivername="postgresql+asyncpg", query=query).render_as_string(hide_password=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACORN_", env_file=".env", extra="ignore")

    environment: Environment = "development"
    database_url: str | None = Field(
        default=None, description="postgresql://user:pass@host:port/db; unset in dev means embedded PostgreSQL"
    )
    redis_url: str | None = Field(default=None, description="redis://host:port/db; unset in dev means embedded Valkey")
    database_pool_size: int = Field(default=10, ge=1, description="connections each process keeps open")
    database_max_overflow: int = Field(
        default=0,
        ge=0,
        description="extra connections opened under load and closed when returned; 0 keeps the pool fixed: "
        "under sustained concurrency an overflow reconnects again and again (costlier than waiting for a "
        "pooled connection)",
    )
    database_connect_timeout: float = Field(
        default=5.0, gt=0, le=60, description="seconds to wait for a new database connection before answering 503"
    )
    database_command_timeout: float | None = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="API only: seconds a statement may run before it is cancelled and the request answers 503 "
        "(a frozen or cut-off database is a bounded wait, not a hang); the worker's long loads are not bounded",
    )
    log_level: str = "INFO"
    log_json: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = 10 * 1024 * 1024
    max_import_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="largest report file `POST /v1/imports` accepts (413 beyond)"
    )
    max_xlsx_uncompressed_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1, description="an XLSX that unpacks to more is refused as a zip bomb"
    )
    max_xlsx_compression_ratio: int = Field(
        default=200, ge=1, description="an XLSX member compressed more than this (x) is refused as a zip bomb"
    )
    import_stale_seconds: int = Field(
        default=300, ge=1, description="a running import nobody holds for this long is re-enqueued"
    )
    public_base_url: str = "http://127.0.0.1:8000"

    # Secrets. The defaults exist so a developer can start with zero configuration; production refuses them.
    api_key_pepper: SecretStr = SecretStr(DEV_API_KEY_PEPPER)
    encryption_keys: list[SecretStr] = Field(default_factory=lambda: [SecretStr(DEV_ENCRYPTION_KEY)])
    jwt_private_keys_pem: list[SecretStr] = Field(
        default_factory=list, description="PEM private keys, newest first; tokens are signed with the first"
    )
    jwt_keys_file: str | None = Field(default=None, description="file holding generated dev signing keys")
    jwt_issuer: str = "https://acorn.local"
    jwt_audience: str = "acorn-api"
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    credential_cache_seconds: float = Field(
        default=5.0, ge=0, le=60, description="how long a process trusts a looked-up credential before re-reading it"
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token that GET /metrics requires; unset, /metrics answers 404 (metrics are not public)",
    )
    api_key_roll_grace_hours: int = Field(default=24, ge=0, le=168, description="old secret stays valid after a roll")

    # Rate limits (token bucket per credential): requests per minute, by role; "scoped" is for credentials
    # with explicit scopes. The bucket holds one minute's worth, so a client may burst that much.
    rate_limit_enabled: bool = True
    rate_limits_per_minute: dict[str, int] = Field(
        default_factory=lambda: {
            "admin": 1200,
            "purchasing": 600,
            "operations": 600,
            "finance": 600,
            "viewer": 600,
            "scoped": 600,
        }
    )
    token_rate_limit_per_client: int = Field(default=30, ge=1, description="token requests per minute per client_id")
    token_rate_limit_per_address: int = Field(
        default=120, ge=1, description="token requests per minute per source address"
    )

    # Failed API-key authentication (a well-formed key that matches nothing): limited per source address and per
    # key prefix, checked before the database is asked; a rejected secret is remembered for a few seconds.
    auth_failures_per_minute_per_address: int = Field(
        default=120, ge=1, description="failed API-key authentications per minute per source address"
    )
    auth_failures_per_minute_per_key_prefix: int = Field(
        default=20, ge=1, description="failed API-key authentications per minute per key prefix"
    )
    credential_negative_cache_seconds: float = Field(
        default=10.0, ge=0, le=300, description="how long a process remembers a secret that matched no API key"
    )

    idempotency_ttl_hours: int = Field(default=24, ge=24)

    # Amazon connector. Production and staging talk only to Amazon's own SP-API and LWA hosts; elsewhere an
    # operator may list other hosts (the simulator) that connection endpoints may name.
    spapi_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="extra SP-API hosts a connection endpoint may name outside production and staging, "
        "comma-separated `host` or `host:port` (e.g. the simulator `127.0.0.1:8100`)",
    )
    lwa_token_url: str | None = Field(
        default=None,
        description="LWA token endpoint for connections to an operator-listed host (outside production and "
        "staging only; its host must be listed too). Default: the endpoint's own /auth/o2/token",
    )
    spapi_report_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest report document download (compressed bytes)"
    )
    spapi_report_max_decompressed_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="largest report document once decompressed"
    )
    spapi_max_rate_limit_wait_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="longest a call waits for a rate-limit token before failing"
    )
    raw_document_max_inline_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="largest archived document GET /v1/raw-documents inlines"
    )

    # Events and webhooks (issue 11). Loopback webhook URLs are accepted only when ``environment`` is
    # ``development`` or ``test`` (the test suite's receiver listens on 127.0.0.1); https is required elsewhere.
    event_retention_days: int = Field(default=30, ge=30, description="events are kept at least this long")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30, description="a 2xx within this is a success")
    webhook_retry_window_seconds: int = Field(
        default=3 * 24 * 3600, ge=1, description="retry a delivery (and disable a failing endpoint) after this long"
    )
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0, description="first retry delay, doubled each time")
    webhook_retry_max_seconds: float = Field(default=6 * 3600.0, gt=0, description="longest delay between retries")
    webhook_secret_overlap_seconds: int = Field(
        default=24 * 3600, ge=0, le=7 * 24 * 3600, description="default overlap of old and new secret on rotation"
    )
    webhook_delivery_concurrency: int = Field(default=32, ge=1, le=512, description="parallel POSTs per worker batch")
    arq_queue_name: str = "acorn:queue"
    redis_key_prefix: str = "acorn"

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        return to_async_database_url(value) if value else None

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("valkey://"):
            value = "redis://" + value.removeprefix("valkey://")
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("spapi_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("spapi_allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        out = []
        for entry in value:
            host = entry.strip().lower()
            if not host or "/" in host or "@" in host or any(c.isspace() for c in host):
                raise ValueError(f"{entry!r}: write a host or host:port, not a URL")
            out.append(host)
        return out

    @model_validator(mode="after")
    def _connector_hosts_only_outside_production(self) -> Settings:
        if self.environment in ("production", "staging"):
            if self.spapi_allowed_hosts:
                raise ValueError(
                    f"ACORN_SPAPI_ALLOWED_HOSTS is not honoured in {self.environment}: connections there reach "
                    "only Amazon's SP-API hosts"
                )
            if self.lwa_token_url:
                raise ValueError(
                    f"ACORN_LWA_TOKEN_URL is not honoured in {self.environment}: LWA is always "
                    "https://api.amazon.com/auth/o2/token"
                )
        return self

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if self.api_key_pepper.get_secret_value() == DEV_API_KEY_PEPPER:
            problems.append("ACORN_API_KEY_PEPPER")
        if any(k.get_secret_value() == DEV_ENCRYPTION_KEY for k in self.encryption_keys):
            problems.append("ACORN_ENCRYPTION_KEYS")
        if not self.jwt_private_keys_pem:
            problems.append("ACORN_JWT_PRIVATE_KEYS_PEM")
        if not self.database_url:
            problems.append("ACORN_DATABASE_URL")
        if not self.redis_url:
            problems.append("ACORN_REDIS_URL")
        if problems:
            raise ValueError("production needs real values for: " + ", ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def allows_loopback_urls(self) -> bool:
        """Tenant-supplied URLs may point at 127.0.0.1/::1 only on a developer's machine or in the test suite."""
        return self.environment in ("development", "test")


@lru_cache
def get_settings() -> Settings:
    return Settings()
