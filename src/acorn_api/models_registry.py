"""Imports every model so that ``Base.metadata`` knows every table (alembic and tests use it)."""

from __future__ import annotations

from acorn_api.accounts import audit as accounts_audit
from acorn_api.accounts import models as accounts_models
from acorn_api.amazon import models as amazon_models
from acorn_api.catalog import models as catalog_models
from acorn_api.core import idempotency
from acorn_api.core import jobs as core_jobs
from acorn_api.core.models import Base
from acorn_api.ledger import archive as ledger_archive
from acorn_api.ledger import models as ledger_models
from acorn_api.quotes import models as quotes_models
from acorn_api.reconciliation import models as reconciliation_models
from acorn_api.refunds import models as refunds_models
from acorn_api.stores import models as stores_models
from acorn_api.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "accounts_audit",
    "accounts_models",
    "amazon_models",
    "catalog_models",
    "core_jobs",
    "idempotency",
    "ledger_archive",
    "ledger_models",
    "metadata",
    "quotes_models",
    "reconciliation_models",
    "refunds_models",
    "stores_models",
    "webhooks_models",
]
