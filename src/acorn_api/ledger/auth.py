from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

LedgerRead = Annotated[Caller, Security(current_caller, scopes=["ledger:read"])]
ImportsWrite = Annotated[Caller, Security(current_caller, scopes=["imports:write"])]
