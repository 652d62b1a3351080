"""Seeded fault injection."""

from __future__ import annotations

import random
from enum import StrEnum

from .config import FaultConfig


class Fault(StrEnum):
    THROTTLE = "throttle"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    TRUNCATED_JSON = "truncated_json"
    EXPIRED_TOKEN = "expired_token"


class FaultInjector:
    """Draws at most one fault per call; the sequence of draws depends only on the seed."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self._rng = random.Random(f"faults:{seed}")
        self.last_server_status = 500

    def draw(self) -> Fault | None:
        roll = self._rng.random()
        # A second draw on every call keeps the sequence aligned whatever the outcome.
        self.last_server_status = 500 if self._rng.random() < 0.5 else 503
        cumulative = 0.0
        for fault, rate in (
            (Fault.THROTTLE, self.config.throttle),
            (Fault.SERVER_ERROR, self.config.server_error),
            (Fault.TIMEOUT, self.config.timeout),
            (Fault.TRUNCATED_JSON, self.config.truncated_json),
            (Fault.EXPIRED_TOKEN, self.config.expired_token),
        ):
            cumulative += rate
            if roll < cumulative:
                return fault
        return None
