"""Request and response shapes of credential management, the token endpoint and the audit log."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from acorn_api.accounts.scopes import SCOPES, Role
from acorn_api.core.time import UTCDateTime


def _known_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if len(set(scopes)) != len(scopes):
        raise ValueError("scopes must not repeat")
    return scopes


ScopeList = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, json_schema_extra={"enum": list(SCOPES)})]],
    Field(
        min_length=1,
        max_length=len(SCOPES),
        examples=[["stores:read", "quotes:read"]],
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_known_scopes),
]
CredentialName = Annotated[str, Field(min_length=1, max_length=200, examples=["NetSuite integration"])]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LEGACY_PERSON_PREFIX = "legacy:"


def _person(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("must name a person (a name or an email)")
    if value.casefold().startswith(LEGACY_PERSON_PREFIX):
        raise ValueError(f"the prefix {LEGACY_PERSON_PREFIX!r} is reserved for credentials made before issued_to")
    if "@" in value and not _EMAIL.match(value):
        raise ValueError("looks like an email but is not one")
    if not any(ch.isalpha() for ch in value):
        raise ValueError("must name a person (a name or an email)")
    return value


IssuedTo = Annotated[
    str,
    Field(
        min_length=1,
        max_length=320,
        description="the person this credential is issued to (a name or an email); required when the credential "
        "can approve quotes. Four-eyes compares people: a quote's approver must be another person than its "
        "submitter, whichever credentials they use.",
        examples=["jane.doe@brand.example"],
    ),
    AfterValidator(_person),
]


class CredentialCreate(BaseModel):
    """A credential gets either a ``role`` (a named scope set) or explicit ``scopes`` — not both."""

    # "Exactly one of role and scopes", said in the schema too, so that generated clients and contract
    # tests know it; null is accepted for an absent field but not advertised.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [{"required": ["role"]}, {"required": ["scopes"]}]}
    )

    name: CredentialName
    role: Role | SkipJsonSchema[None] = None
    scopes: ScopeList | SkipJsonSchema[None] = None
    expires_at: UTCDateTime | None = Field(default=None, description="after this, the credential stops working")
    issued_to: IssuedTo | SkipJsonSchema[None] = None

    @field_validator("role", "scopes", mode="before")
    @classmethod
    def _absent_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("leave the field out instead of sending null")
        return value

    @model_validator(mode="after")
    def _role_or_scopes(self) -> CredentialCreate:
        if (self.role is None) == (self.scopes is None):
            raise ValueError("give either role or scopes (exactly one)")
        return self


class CredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role | None
    scopes: list[str] = Field(description="the effective scopes: the role's set, or the explicit list")
    issued_to: str | None = Field(
        description="the person the credential is issued to; `legacy:<id>` for credentials made before this "
        "field existed (each counts as its own person)"
    )
    created_at: UTCDateTime
    last_used_at: UTCDateTime | None = Field(description="accurate to about a minute")
    expires_at: UTCDateTime | None
    revoked_at: UTCDateTime | None


class ApiKeyOut(CredentialOut):
    prefix: str = Field(description="the visible start of the key, to recognise it", examples=["acn_k3m9x2p7q4rt"])
    previous_valid_until: UTCDateTime | None = Field(
        description="after a roll, the old secret keeps working until this time"
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret; shown once, send it as `Authorization: Bearer <key>`")


class OAuthClientOut(CredentialOut):
    client_id: str = Field(examples=["acc_k3m9x2p7q4rt"])
    secret_rotated_at: UTCDateTime | None


class OAuthClientCreated(OAuthClientOut):
    client_secret: str = Field(description="shown once; exchange it with `client_id` at `POST /oauth/token`")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the RFC 6750 token type, not a secret
    expires_in: int = Field(description="seconds")
    scope: str = Field(description="the granted scopes, space-separated")


class TokenError(BaseModel):
    """RFC 6749 §5.2 error, with the problem-details fields of the rest of the API alongside."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(examples=["invalid_client"])
    error_description: str | None = None


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    action: str = Field(examples=["store.updated"])
    resource_type: str
    resource_id: str
    actor_id: uuid.UUID | None = Field(description="the API key or OAuth client that made the change")
    actor_type: str
    request_id: str | None
    changes: dict[str, Any] = Field(description="`{field: [before, after]}`; secrets never appear")
    created_at: UTCDateTime
