"""SP-API simulator: a local stand-in for Amazon's vendor (1P) Selling Partner API."""

from .app import create_simulator_app, run_simulator
from .config import DEFAULT_RATE_LIMITS, FaultConfig, SimulatorConfig

__all__ = ["DEFAULT_RATE_LIMITS", "FaultConfig", "SimulatorConfig", "create_simulator_app", "run_simulator"]
