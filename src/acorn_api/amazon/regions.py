"""SP-API regions, hosts and marketplace ids."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Region(StrEnum):
    NA = "NA"
    EU = "EU"
    FE = "FE"


REGION_HOSTS: dict[Region, str] = {
    Region.NA: "https://sellingpartnerapi-na.amazon.com",
    Region.EU: "https://sellingpartnerapi-eu.amazon.com",
    Region.FE: "https://sellingpartnerapi-fe.amazon.com",
}

LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 - a URL, not a secret
LWA_TOKEN_PATH = "/auth/o2/token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Marketplace:
    code: str
    marketplace_id: str
    region: Region


_MARKETPLACE_TABLE: tuple[tuple[str, str, Region], ...] = (
    ("US", "ATVPDKIKX0DER", Region.NA),
    ("CA", "A2EUQ1WTGCTBG2", Region.NA),
    ("MX", "A1AM78C64UM0Y8", Region.NA),
    ("BR", "A2Q3Y263D00KWC", Region.NA),
    ("UK", "A1F83G8C2ARO7P", Region.EU),
    ("DE", "A1PA6795UKMFR9", Region.EU),
    ("FR", "A13V1IB3VIYZZH", Region.EU),
    ("IT", "APJ6JRA9NG5V4", Region.EU),
    ("ES", "A1RKKUPIHCS9HS", Region.EU),
    ("NL", "A1805IZSGTT6HS", Region.EU),
    ("SE", "A2NODRKZP88ZB9", Region.EU),
    ("PL", "A1C3SOZRARQ6R3", Region.EU),
    ("TR", "A33AVAJ2PDY3EV", Region.EU),
    ("AE", "A2VIGQ35RCS4UG", Region.EU),
    ("SA", "A17E79C6D8DWNP", Region.EU),
    ("IN", "A21TJRUUN4KGV", Region.EU),
    ("EG", "ARBP9OOSHTCHU", Region.EU),
    ("JP", "A1VC38T7YXB528", Region.FE),
    ("AU", "A39IBJ37TRP1C6", Region.FE),
    ("SG", "A19VAU5U5O7RUS", Region.FE),
)

MARKETPLACES: dict[str, Marketplace] = {
    code: Marketplace(code, mid, region) for code, mid, region in _MARKETPLACE_TABLE
}
MARKETPLACES_BY_ID: dict[str, Marketplace] = {m.marketplace_id: m for m in MARKETPLACES.values()}


def marketplace(code: str) -> Marketplace:
    """Look up a marketplace by its country code (``GB`` is accepted as an alias of ``UK``)."""
    key = code.strip().upper()
    if key == "GB":
        key = "UK"
    try:
        return MARKETPLACES[key]
    except KeyError:
        raise KeyError(f"unknown marketplace code {code!r}") from None


def marketplace_id(code: str) -> str:
    return marketplace(code).marketplace_id


def region_for_marketplace(code: str) -> Region:
    return marketplace(code).region


def _strip_override(endpoint_override: str) -> str:
    return endpoint_override.rstrip("/")


def api_base_url(region: Region | str, endpoint_override: str | None = None) -> str:
    """Base URL for SP-API calls; an override (simulator / sandbox) replaces the regional host."""
    if endpoint_override:
        return _strip_override(endpoint_override)
    return REGION_HOSTS[Region(region)]


def lwa_token_url() -> str:
    """Amazon's LWA token endpoint. It is never derived from a connection's endpoint: a simulator's token URL
    is set explicitly (``ConnectionCredentials.token_url``), and only from an operator-listed host
    (:mod:`acorn_api.amazon.endpoints`)."""
    return LWA_TOKEN_URL
