from __future__ import annotations

from typing import Annotated

from fastapi import Security

from acorn_api.accounts.auth import Caller, current_caller

WebhooksRead = Annotated[Caller, Security(current_caller, scopes=["webhooks:read"])]
WebhooksWrite = Annotated[Caller, Security(current_caller, scopes=["webhooks:write"])]
