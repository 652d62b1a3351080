"""Background work for quotes: marking ended approvals as expired (idempotent; runs from cron)."""

from __future__ import annotations

from typing import Any

from acorn_api.core.jobs import job_session
from acorn_api.quotes import service


async def expire_quotes(ctx: dict[str, Any]) -> int:
    """Approved quotes whose effective_to has passed become ``expired``; prices never depend on this running."""
    async with job_session(ctx) as session:
        return await service.expire_due(session)
