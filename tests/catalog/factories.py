from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count(1)

# Valid GS1 codes (check digits verified).
EAN = "4006381333931"
UPC = "036000291452"


def item_body(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    body: dict[str, Any] = {
        "asin": f"B0{n:08d}",
        "vendor_sku": f"SKU-{n}",
        "title": f"Stainless steel water bottle {n}",
        "brand": "Acme",
    }
    body.update(overrides)
    return body
