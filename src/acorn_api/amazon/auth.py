from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

ConnectionsRead = Annotated[Caller, Security(current_caller, scopes=["connections:read"])]
ConnectionsWrite = Annotated[Caller, Security(current_caller, scopes=["connections:write"])]
SyncRun = Annotated[Caller, Security(current_caller, scopes=["sync:run"])]
LedgerRead = Annotated[Caller, Security(current_caller, scopes=["ledger:read"])]
