"""arq jobs of the ledger: load an uploaded report, and recover imports whose worker died.

``load_import`` may run twice (arq delivers at least once): a finished import is a no-op, and a load
that dies leaves nothing behind because it is one transaction; the next run does it all again.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import structlog

from acorn_api.core.jobs import job_session
from acorn_api.ledger import service
from acorn_api.ledger.archive import raw_documents
from acorn_api.settings import Settings, get_settings

log = structlog.get_logger(__name__)


async def load_import(ctx: dict[str, Any], account_id: str, import_id: str) -> str:
    """Parse and load one import; returns its status (``succeeded``, ``failed`` or ``running`` on a crash)."""
    settings: Settings = ctx.get("settings") or get_settings()
    account, imp = uuid.UUID(account_id), uuid.UUID(import_id)
    async with job_session(ctx) as session:
        row = await service.start(session, account, imp)
        if row is None:
            return "done"
        document_id = row.raw_document_id
    assert document_id is not None
    with tempfile.TemporaryDirectory(prefix="acorn-import-") as folder:
        path = Path(folder) / "file"
        try:
            async with job_session(ctx) as session:
                with path.open("wb") as out:
                    await raw_documents.spool(session, account, document_id, out)
            async with job_session(ctx) as session:
                return await service.load(session, account, imp, path, settings)
        except Exception:
            # arq does not retry a plain exception (DESIGN.md §8): the import stays `running`, nothing of it
            # is in the ledger, and `recover_stale_imports` loads it again (up to MAX_ATTEMPTS).
            log.exception("import_load_failed", import_id=import_id)
            return "running"


async def recover_stale_imports(ctx: dict[str, Any]) -> int:
    """Re-enqueue imports queued or running with nobody loading them (lost job, dead worker)."""
    settings: Settings = ctx.get("settings") or get_settings()
    async with job_session(ctx) as session:
        return len(await service.recover_stale(session, settings.import_stale_seconds))
