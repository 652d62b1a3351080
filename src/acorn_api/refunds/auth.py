from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

RefundsRead = Annotated[Caller, Security(current_caller, scopes=["refunds:read"])]
RefundsWrite = Annotated[Caller, Security(current_caller, scopes=["refunds:write"])]
