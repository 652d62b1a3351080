from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

QuotesRead = Annotated[Caller, Security(current_caller, scopes=["quotes:read"])]
QuotesWrite = Annotated[Caller, Security(current_caller, scopes=["quotes:write"])]
QuotesApprove = Annotated[Caller, Security(current_caller, scopes=["quotes:approve"])]
# The policy governs who may approve what: only an account administrator changes it.
QuotePolicyWrite = Annotated[Caller, Security(current_caller, scopes=["admin"])]
