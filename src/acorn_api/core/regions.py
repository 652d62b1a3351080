"""Amazon's regions and the marketplaces inside each (the SP-API's grouping)."""

from __future__ import annotations

from enum import StrEnum


class Region(StrEnum):
    NA = "NA"
    EU = "EU"
    FE = "FE"


class Marketplace(StrEnum):
    US = "US"
    CA = "CA"
    MX = "MX"
    BR = "BR"
    UK = "UK"
    DE = "DE"
    FR = "FR"
    IT = "IT"
    ES = "ES"
    NL = "NL"
    SE = "SE"
    PL = "PL"
    TR = "TR"
    AE = "AE"
    SA = "SA"
    IN = "IN"
    EG = "EG"
    JP = "JP"
    AU = "AU"
    SG = "SG"


MARKETPLACE_REGION: dict[Marketplace, Region] = {
    **{m: Region.NA for m in (Marketplace.US, Marketplace.CA, Marketplace.MX, Marketplace.BR)},
    **{
        m: Region.EU
        for m in (
            Marketplace.UK,
            Marketplace.DE,
            Marketplace.FR,
            Marketplace.IT,
            Marketplace.ES,
            Marketplace.NL,
            Marketplace.SE,
            Marketplace.PL,
            Marketplace.TR,
            Marketplace.AE,
            Marketplace.SA,
            Marketplace.IN,
            Marketplace.EG,
        )
    },
    **{m: Region.FE for m in (Marketplace.JP, Marketplace.AU, Marketplace.SG)},
}

MARKETPLACE_CURRENCY: dict[Marketplace, str] = {
    Marketplace.US: "USD",
    Marketplace.CA: "CAD",
    Marketplace.MX: "MXN",
    Marketplace.BR: "BRL",
    Marketplace.UK: "GBP",
    Marketplace.DE: "EUR",
    Marketplace.FR: "EUR",
    Marketplace.IT: "EUR",
    Marketplace.ES: "EUR",
    Marketplace.NL: "EUR",
    Marketplace.SE: "SEK",
    Marketplace.PL: "PLN",
    Marketplace.TR: "TRY",
    Marketplace.AE: "AED",
    Marketplace.SA: "SAR",
    Marketplace.IN: "INR",
    Marketplace.EG: "EGP",
    Marketplace.JP: "JPY",
    Marketplace.AU: "AUD",
    Marketplace.SG: "SGD",
}
