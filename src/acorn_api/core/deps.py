"""Small request dependencies shared by every domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from acorn_api.settings import Settings


async def request_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(request_settings)]
