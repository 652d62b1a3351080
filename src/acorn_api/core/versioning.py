"""Optimistic concurrency: the one rule for stale versions of any mutable business object."""

from __future__ import annotations

from acorn_api.core.errors import Conflict, PreconditionFailed, field_error


def require_version(resource: str, current: int, *, version: int | None, if_match: int | None = None) -> None:
    """Refuse a write based on an old read: a stale body ``version`` is 409, a stale ``If-Match`` is 412."""
    if version is not None and version != current:
        raise Conflict(
            f"The {resource} is at version {current}, not {version}; read it again and retry.",
            code="stale_version",
            current_version=current,
            errors=[field_error(["body", "version"], f"stale: the {resource} is at version {current}", "stale")],
        )
    if if_match is not None and if_match != current:
        raise PreconditionFailed(
            f"If-Match names version {if_match}; the {resource} is at version {current}.",
            code="stale_version",
            current_version=current,
        )
