"""Small HTTP helpers shared by routers."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header

from acorn_api.core.errors import Unprocessable, field_error

_ETAG_RE = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')


async def if_match_version(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=16,
            pattern=r'^(W/)?"?[0-9]{1,9}"?$',
            description='the version you read, as an ETag: "3"',
        ),
    ] = None,
) -> int | None:
    if if_match is None:
        return None
    found = _ETAG_RE.match(if_match.strip())
    if not found:
        raise Unprocessable(
            'If-Match must be the ETag of the version you read, e.g. "3".',
            errors=[field_error(["header", "If-Match"], "not a version ETag")],
        )
    return int(found.group(1))


IfMatch = Annotated[int | None, Depends(if_match_version)]
