"""The scope catalogue and the roles (named scope sets) built from it."""

from __future__ import annotations

from enum import StrEnum

SCOPES: dict[str, str] = {
    "stores:read": "Read stores",
    "stores:write": "Create, change and archive stores",
    "items:read": "Read items",
    "items:write": "Create and change items",
    "quotes:read": "Read quotes, prices and conflicts",
    "quotes:write": "Draft, submit and withdraw quotes",
    "quotes:approve": "Approve or reject submitted quotes",
    "connections:read": "Read Amazon connections",
    "connections:write": "Create and change Amazon connections",
    "sync:run": "Start syncs and submit documents to Amazon",
    "ledger:read": "Read the ledger, purchase orders and imports",
    "imports:write": "Upload Vendor Central reports",
    "refunds:read": "Read refund (deduction) cases",
    "refunds:write": "Work refund cases and disputes",
    "reconciliation:read": "Read reconciliation views",
    "reconciliation:write": "Start reconciliation (matching) runs",
    "webhooks:read": "Read events, webhook endpoints and their delivery attempts",
    "webhooks:write": "Manage webhook endpoints and redeliver events",
    "audit:read": "Read the audit log",
    "admin": "Everything, including credentials and account settings",
}

ADMIN_SCOPE = "admin"
READ_SCOPES = frozenset(s for s in SCOPES if s.endswith(":read"))


class Role(StrEnum):
    admin = "admin"
    purchasing = "purchasing"
    operations = "operations"
    finance = "finance"
    viewer = "viewer"


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.admin: frozenset(SCOPES),
    Role.purchasing: frozenset(
        {"stores:read", "stores:write", "items:read", "items:write", "quotes:read", "quotes:write"}
    ),
    Role.operations: frozenset(
        {
            "stores:read",
            "items:read",
            "quotes:read",
            "connections:read",
            "connections:write",
            "sync:run",
            "ledger:read",
            "imports:write",
            "refunds:read",
            "refunds:write",
        }
    ),
    Role.finance: frozenset(
        {
            "stores:read",
            "items:read",
            "quotes:read",
            "quotes:approve",
            "ledger:read",
            "reconciliation:read",
            "reconciliation:write",
            "refunds:read",
            "refunds:write",
        }
    ),
    Role.viewer: READ_SCOPES,
}


def scopes_for(role: str | None, scopes: list[str] | None) -> frozenset[str]:
    """A credential's effective scopes: its role's set, or its explicit list."""
    if role is not None:
        return ROLE_SCOPES[Role(role)]
    return frozenset(scopes or ())


def grants(held: frozenset[str], needed: str) -> bool:
    return ADMIN_SCOPE in held or needed in held
