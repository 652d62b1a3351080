"""JWT access tokens (RFC 9068). Issued by ``POST /oauth/token``; verified here."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts.auth import Caller, _unauthorized
from acorn_api.settings import Settings


async def caller_from_access_token(request: Request, session: AsyncSession, settings: Settings, token: str) -> Caller:
    raise _unauthorized("JWT access tokens are not accepted yet.")
