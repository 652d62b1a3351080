"""The connector's tests talk to the SP-API simulator on 127.0.0.1: the operator allow-list names it, as
``acorn-api dev`` does for its own simulator (without it, only Amazon's hosts are accepted)."""

from __future__ import annotations

import pytest

from acorn_api.settings import Settings


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"spapi_allowed_hosts": ["127.0.0.1"]})
