from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

ItemsRead = Annotated[Caller, Security(current_caller, scopes=["items:read"])]
ItemsWrite = Annotated[Caller, Security(current_caller, scopes=["items:write"])]
