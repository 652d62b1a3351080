from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

StoresRead = Annotated[Caller, Security(current_caller, scopes=["stores:read"])]
StoresWrite = Annotated[Caller, Security(current_caller, scopes=["stores:write"])]
