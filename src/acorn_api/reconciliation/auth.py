from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

ReconciliationRead = Annotated[Caller, Security(current_caller, scopes=["reconciliation:read"])]
ReconciliationWrite = Annotated[Caller, Security(current_caller, scopes=["reconciliation:write"])]
