"""The account's approval policy, and what it says about one price change.

* A change above ``finance_threshold_pct`` (default 10 %) against the price it replaces needs an approver
  whose role is ``finance`` — or ``admin``: the admin role holds every scope and owns the account, so it
  may stand in for finance. Credentials with an explicit scope list (no role) never count as finance.
* A change above ``hard_cap_pct`` (default 50 %) is refused unless the quote carries ``override_reason``.
* The baseline is the price that would be in force for the quote's scope at its ``effective_from`` without
  it (store → marketplace → region). A quote with no baseline (a first price) has no change %: only the
  ordinary ``quotes:approve`` rule and four-eyes apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from acorn_api.accounts import audit
from acorn_api.accounts.auth import Caller
from acorn_api.core.versioning import require_version
from acorn_api.quotes.models import QuotePolicy
from acorn_api.quotes.repository import quote_policies
from acorn_api.quotes.schemas import QuotePolicyIn

DEFAULT_FINANCE_THRESHOLD_PCT = Decimal("10")
DEFAULT_HARD_CAP_PCT = Decimal("50")
DEFAULT_CONFLICT_TOLERANCE_PCT = Decimal("5")
FINANCE_ROLES = frozenset({"finance", "admin"})
POLICY_FIELDS = ("finance_threshold_pct", "hard_cap_pct", "conflict_tolerance_pct")


@dataclass(frozen=True)
class Policy:
    finance_threshold_pct: Decimal = DEFAULT_FINANCE_THRESHOLD_PCT
    hard_cap_pct: Decimal = DEFAULT_HARD_CAP_PCT
    conflict_tolerance_pct: Decimal = DEFAULT_CONFLICT_TOLERANCE_PCT
    version: int = 0
    is_default: bool = True


@dataclass(frozen=True)
class Assessment:
    baseline: Decimal | None
    change_pct: Decimal | None
    requires_finance: bool
    over_cap: bool


def change_pct(new: Decimal, baseline: Decimal) -> Decimal:
    """|new − baseline| / baseline × 100, rounded half-up to 4 decimals."""
    return (abs(new - baseline) * 100 / baseline).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def assess(policy: Policy, new_price: Decimal, baseline: Decimal | None) -> Assessment:
    if baseline is None:
        return Assessment(baseline=None, change_pct=None, requires_finance=False, over_cap=False)
    pct = change_pct(new_price, baseline)
    return Assessment(
        baseline=baseline,
        change_pct=pct,
        requires_finance=pct > policy.finance_threshold_pct,
        over_cap=pct > policy.hard_cap_pct,
    )


def counts_as_finance(caller: Caller) -> bool:
    return caller.role in FINANCE_ROLES


def _from_row(row: QuotePolicy | None) -> Policy:
    if row is None:
        return Policy()
    return Policy(
        finance_threshold_pct=row.finance_threshold_pct,
        hard_cap_pct=row.hard_cap_pct,
        conflict_tolerance_pct=row.conflict_tolerance_pct,
        version=row.version,
        is_default=False,
    )


async def current(session: AsyncSession, caller: Caller) -> Policy:
    """The account's policy, or the defaults when it never set one."""
    return _from_row(await quote_policies.for_account(session, caller.account_id))


async def put(session: AsyncSession, caller: Caller, data: QuotePolicyIn) -> Policy:
    """Replace the account's policy; ``version`` (if given) must match the current one (0 = defaults)."""
    await quote_policies.lock_account_policy(session, caller.account_id)
    row = await quote_policies.for_account(session, caller.account_id, for_update=True)
    current_version = row.version if row else 0
    require_version("policy", current_version, version=data.version)
    before = audit.snapshot(row, POLICY_FIELDS) if row else None
    if row is None:
        row = quote_policies.add(
            session,
            caller.account_id,
            QuotePolicy(
                finance_threshold_pct=data.finance_threshold_pct,
                hard_cap_pct=data.hard_cap_pct,
                conflict_tolerance_pct=data.conflict_tolerance_pct,
            ),
        )
    else:
        row.finance_threshold_pct = data.finance_threshold_pct
        row.hard_cap_pct = data.hard_cap_pct
        row.conflict_tolerance_pct = data.conflict_tolerance_pct
    await session.flush()
    await session.refresh(row)
    audit.record(
        session,
        caller,
        "quote_policy.updated",
        "quote_policy",
        row.id,
        before=before,
        after=audit.snapshot(row, POLICY_FIELDS),
    )
    return _from_row(row)
