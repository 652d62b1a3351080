"""Configuration of the SP-API simulator."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Amazon's documented usage plans (rate in requests per second, burst), taken from the
# "Usage Plan" tables in the operation descriptions of the official models.
DEFAULT_RATE_LIMITS: dict[str, tuple[float, int]] = {
    "getPurchaseOrders": (10.0, 10),
    "getPurchaseOrder": (10.0, 10),
    "submitAcknowledgement": (10.0, 10),
    "getPurchaseOrdersStatus": (10.0, 10),
    "getShipmentDetails": (10.0, 10),
    "submitInvoices": (10.0, 10),
    "getTransaction": (10.0, 20),
    "createReport": (0.0167, 15),
    "getReport": (2.0, 15),
    "getReportDocument": (0.0167, 15),
}


def _today_midnight_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class FaultConfig(BaseModel):
    """Probabilities (0..1) of injecting each fault into an SP-API call."""

    model_config = ConfigDict(extra="forbid")

    throttle: float = Field(default=0.0, ge=0.0, le=1.0)
    server_error: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout: float = Field(default=0.0, ge=0.0, le=1.0)
    truncated_json: float = Field(default=0.0, ge=0.0, le=1.0)
    expired_token: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_seconds: float = Field(default=30.0, ge=0.0)

    @classmethod
    def mixed(cls, rate: float, *, timeout_seconds: float = 2.0) -> FaultConfig:
        """``rate`` of the calls fail, in a realistic mix: mostly 429s and 5xx, some timeouts, truncated
        bodies and expired tokens (what ``acorn-api simulator --fault-rate`` uses)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("the fault rate must be between 0 and 1")
        return cls(
            throttle=rate * 0.4,
            server_error=rate * 0.3,
            timeout=rate * 0.1,
            truncated_json=rate * 0.1,
            expired_token=rate * 0.1,
            timeout_seconds=timeout_seconds,
        )

    @model_validator(mode="after")
    def _total_at_most_one(self) -> FaultConfig:
        total = self.throttle + self.server_error + self.timeout + self.truncated_json + self.expired_token
        if total > 1.0 + 1e-9:
            raise ValueError("the fault rates must add up to at most 1")
        return self


class SimulatorConfig(BaseModel):
    """Everything that determines the simulator's data and behaviour."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42
    purchase_orders: int = Field(default=500, ge=0)
    vendor_codes: list[str] = Field(default_factory=lambda: ["ACME1", "ACME2"], min_length=1)
    marketplaces: list[str] = Field(default_factory=lambda: ["ATVPDKIKX0DER"], min_length=1)
    anchor: datetime = Field(default_factory=_today_midnight_utc)
    history_days: int = Field(default=180, ge=1, le=180)
    rate_limits_enabled: bool = True
    rate_overrides: dict[str, tuple[float, int]] = Field(default_factory=dict)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    client_id: str = "sim-client"
    client_secret: str = "sim-secret"
    refresh_token: str = "Atzr|sim-refresh"
    access_token_ttl: int = Field(default=3600, ge=1)
    transaction_delay_seconds: float = Field(default=5.0, ge=0.0)
    sandbox: bool = False

    @field_validator("anchor")
    @classmethod
    def _anchor_is_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("rate_overrides")
    @classmethod
    def _known_operations(cls, value: dict[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
        unknown = set(value) - set(DEFAULT_RATE_LIMITS)
        if unknown:
            raise ValueError(f"unknown operations in rate_overrides: {sorted(unknown)}")
        for rate, burst in value.values():
            if rate <= 0 or burst < 1:
                raise ValueError("rate must be > 0 and burst >= 1")
        return value

    def rate_limit(self, operation: str) -> tuple[float, int]:
        return self.rate_overrides.get(operation, DEFAULT_RATE_LIMITS[operation])
