"""Who a request acts as: the :class:`Caller` every service receives, and the 401 refusing one.

Its own module so that authentication (``auth``), access tokens (``tokens``) and the credential cache
(``cache``) all depend on it and never on each other in a circle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from acorn_api.accounts.scopes import grants
from acorn_api.core.errors import Unauthorized

CredentialType = Literal["api_key", "oauth_client"]


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two ``issued_to`` values name one person (case and spacing do not make another person)."""
    if a is None or b is None:
        return False
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    credential_id: uuid.UUID
    credential_type: CredentialType
    scopes: frozenset[str]
    role: str | None = None
    token_id: str | None = field(default=None, compare=False)
    # The person the credential was issued to; four-eyes rules compare people, not credentials.
    issued_to: str | None = field(default=None, compare=False)

    def can(self, scope: str) -> bool:
        return grants(self.scopes, scope)


def unauthorized(detail: str, *, error: str = "invalid_token") -> Unauthorized:
    return Unauthorized(
        detail,
        code="invalid-credentials",
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )
