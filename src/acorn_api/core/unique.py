"""Check-then-insert without the race: a unique violation becomes the same 409 as the check.

A service checks "is this code taken?" to answer a clear 409, but two concurrent requests can both pass
the check; the database's unique constraint then stops the second, which used to surface as a 500.
:func:`flush_unique` flushes inside a savepoint (so the request's transaction stays usable) and maps a
violation of a named constraint to the conflict the check would have raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.core.errors import AcornError

UNIQUE_VIOLATION = "23505"

ConflictFactory = Callable[[], AcornError]


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the unique constraint (or unique index) a flush violated, or None for other errors."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) not in (None, UNIQUE_VIOLATION) or (
        getattr(orig, "pgcode", None) not in (None, UNIQUE_VIOLATION)
    ):
        return None
    cause = getattr(orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None) or getattr(orig, "constraint_name", None)
    if isinstance(name, str):
        return name
    message = str(orig)
    marker = 'unique constraint "'
    if marker in message:
        return message.split(marker, 1)[1].split('"', 1)[0]
    return None


async def flush_unique(session: AsyncSession, conflicts: Mapping[str, ConflictFactory]) -> None:
    """Flush pending changes; a violation of one of the named unique constraints raises its conflict.

    ``conflicts`` maps constraint names (``uq_<table>_<columns>`` by the naming convention) to the error the
    service's own pre-check raises, so a lost race answers exactly what the check answers."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        name = violated_constraint(exc)
        factory = conflicts.get(name) if name else None
        if factory is None:
            raise
        raise factory() from exc
