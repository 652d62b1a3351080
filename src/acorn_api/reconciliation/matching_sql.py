"""The set-based SQL of invoice matching, in one place.

Only constants of this module (entry types, column lists, fixed fragments) are interpolated into these
strings; every value from outside is a bind parameter.

Every statement is scoped by ``:account_id``. Scoped (incremental) variants read the invoice numbers of
the array parameter ``:numbers`` (index lookups); full variants read the whole account. Money stays NUMERIC end to
end; an entry in another currency than its invoice is converted with the exchange rate of the
remittance (``payments.exchange_rate``: ``payment_amount = amount × rate``) that carried it, or counted
in ``unconverted_entries`` and left out when no rate is known.

Definitions (per invoice, in the invoice's currency, every figure a magnitude):

* ``invoiced``: invoice entries (or the ``invoices`` row's amount when the ledger has no invoice entry);
* ``paid``: payments received; ``reversed``: reversals of deductions (money that came back);
* ``deducted``: deductions taken (every other entry type) *not written off*; ``written_off``: the part of
  the invoice's deductions its refund cases wrote off, so every deducted unit is in exactly one of the two;
* ``open_balance = invoiced − paid − deducted + reversed − written_off`` (= the sum of the ledger
  entries: a write-off moves a deduction from "still contestable" to "lost", not the receivable);
* ``open_deductions = deducted − reversed`` (not below zero): deductions still worth disputing.
"""

# ruff: noqa: S608 - only this module's constant fragments are interpolated; inputs are bind parameters
from __future__ import annotations

from collections.abc import Callable

from acorn_api.ledger.models import REVERSAL_OF, EntryType

TOLERANCE = "0.01"
REVERSAL_TYPES = tuple(str(t) for t in REVERSAL_OF)
DEDUCTION_LIKE = tuple(
    str(t) for t in EntryType if t not in (EntryType.invoice, EntryType.payment) and t not in REVERSAL_OF
)
"""Entry types that take money off an invoice other than a payment (deductions, withholding, discounts…)."""
NIL_UUID = "00000000-0000-0000-0000-000000000000"
DISPUTED_CASE = "('disputed', 'redisputed')"
RECOVERED_CASE = "('recovered', 'partially_recovered')"

BALANCE_COLUMNS = (
    "account_id, invoice_number, invoice_id, currency, invoice_date, due_on, po_number, store_id, vendor_code, "
    "invoiced, paid, deducted, deductions, reversed, written_off, disputed, open_balance, open_deductions, "
    "status, unconverted_entries, entry_count, last_activity_on"
)
_UPDATABLE = [c.strip() for c in BALANCE_COLUMNS.split(",")][2:]


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _touched(alias: str, scoped: bool) -> str:
    return f"AND {alias}.invoice_number = ANY(CAST(:numbers AS varchar[]))" if scoped else ""


def _money_aggregates(amount: str) -> str:
    """The per-invoice money sums over ``amount`` (the entry's amount, or its converted amount)."""
    per_type = ",\n        ".join(
        f"-sum({amount}) FILTER (WHERE e.entry_type = '{t}') AS {_per_type(t)}" for t in DEDUCTION_LIKE
    )
    return f"""sum({amount}) FILTER (WHERE e.entry_type = 'invoice') AS invoiced,
        -sum({amount}) FILTER (WHERE e.entry_type = 'payment') AS paid,
        sum({amount}) FILTER (WHERE e.entry_type IN {_in(REVERSAL_TYPES)}) AS reversed,
        -sum({amount}) FILTER (WHERE e.entry_type NOT IN {_in(NOT_DEDUCTION)}) AS deducted_gross,
        sum({amount}) AS total,
        {per_type}"""


NOT_DEDUCTION = ("invoice", "payment", *REVERSAL_TYPES)
"""Every entry type outside these is deduction-like (the ledger's check constraint lists the types)."""


def _per_type(entry_type: str) -> str:
    return f'"d_{entry_type}"'


def _converted(name: str) -> str:
    """A money sum of an invoice: converted entry by entry when some entry is in another currency."""
    return f"CASE WHEN j.convert THEN cv.{name} ELSE j.{name} END"


def _as_is(name: str) -> str:
    return f"j.{name}"


def _deductions_json(money: Callable[[str], str]) -> str:
    """``{"type": "amount", ...}`` of the types with entries: JSON text, keys in ``DEDUCTION_LIKE`` order.

    Kept as text (a ``json`` column) and compared with the stored text as is, so the million unchanged invoices of
    a full run are never parsed (``::jsonb`` cost ~0.5 s per million invoices, ``jsonb_build_object`` about four
    times that). Amounts are JSON strings: exact, whatever the reader's JSON parser does with numbers.
    """
    pairs = ", ".join(f"""'"{t}": "' || {money(_per_type(t))} || '"'""" for t in DEDUCTION_LIKE)
    return f"('{{' || concat_ws(', ', {pairs}) || '}}')"


def _comparable(alias: str, column: str) -> str:
    """A balance column as ``IS DISTINCT FROM`` compares it (``json`` has no equality: its text is compared)."""
    return f"{alias}.{column}::text" if column == "deductions" else f"{alias}.{column}"


def _distinct(old: str, new: str) -> str:
    """Whether any updatable column of balance row ``old`` differs from ``new``'s."""
    return (
        f"({', '.join(_comparable(old, c) for c in _UPDATABLE)}) "
        f"IS DISTINCT FROM ({', '.join(_comparable(new, c) for c in _UPDATABLE)})"
    )


CONVERSION_PENDING = "-1"
"""``unconverted_entries`` of a row the full statement leaves to the scoped conversion pass (a count is never < 0)."""

_CONVERSION = f"""
    -- an entry in another currency than the invoice's: sum this invoice's entries again, converted with the
    -- exchange rate of the remittance that carried each (or counted as unconverted when none is known)
    LEFT JOIN LATERAL (
        SELECT {_money_aggregates("x.amt")},
            count(*) FILTER (WHERE x.amt IS NULL) AS unconverted
        FROM ledger_entries e
        LEFT JOIN payments p
            ON e.currency <> j.i_currency AND p.account_id = e.account_id AND p.payment_number = e.payment_number
        CROSS JOIN LATERAL (
            SELECT CASE
                WHEN e.currency = j.i_currency THEN e.amount
                WHEN p.exchange_rate > 0 AND p.currency = j.i_currency AND p.payment_currency = e.currency
                    THEN round(e.amount / p.exchange_rate, 4)
                WHEN p.exchange_rate > 0 AND p.currency = e.currency AND p.payment_currency = j.i_currency
                    THEN round(e.amount * p.exchange_rate, 4)
            END AS amt
        ) x
        WHERE j.convert AND e.account_id = :account_id AND e.invoice_number = j.invoice_number
    ) cv ON true
"""


def _from_entries(aggregate: str) -> str:
    """An attribute of the invoice's entries, looked up (index) only where the ``invoices`` row lacks it."""
    return (
        f"(SELECT {aggregate} FROM ledger_entries x "
        "WHERE x.account_id = :account_id AND x.invoice_number = j.invoice_number)"
    )


def compute_balances(scoped: bool) -> str:
    """INSERT into ``rec_new`` the computed balance of every invoice (all, or those in ``:numbers``) that differs
    from its row in ``invoice_balances`` (or has none): unchanged invoices are not written.

    One pass over the ledger in invoice-number order sums each invoice's entries as they are. An invoice with an
    entry in another currency than its own (rare) must be summed entry by entry, converted with the rate of the
    remittance that carried each: the scoped statement does that for its few invoices (an index lookup each);
    the full statement only marks them (``unconverted_entries = -1``, see ``CONVERSION_PENDING``) for a scoped
    pass afterwards, so the million other invoices pay nothing for it. Store, vendor code, PO and currency
    come from the entries only where the ``invoices`` row lacks them (an index lookup, skipped otherwise).
    """
    conversion = _CONVERSION if scoped else ""
    money = _converted if scoped else _as_is
    pending = "cv.unconverted" if scoped else CONVERSION_PENDING
    return f"""
WITH raw AS (
    -- the entries as they are, one pass in invoice-number order (the ledger's (account, invoice_number) index)
    SELECT e.invoice_number AS entries_of,
        min(e.currency) AS cur_lo, max(e.currency) AS cur_hi,
        min(e.occurred_on) FILTER (WHERE e.entry_type = 'invoice') AS e_invoice_date,
        min(e.occurred_on) AS first_on,
        max(e.due_on) FILTER (WHERE e.entry_type = 'invoice') AS e_due_on,
        count(*) FILTER (WHERE e.entry_type = 'invoice') AS n_invoice,
        {_money_aggregates("e.amount")},
        count(*) AS entry_count,
        max(e.occurred_on) AS last_on
    FROM ledger_entries e
    WHERE e.account_id = :account_id AND e.invoice_number IS NOT NULL {_touched("e", scoped)}
    GROUP BY e.invoice_number
),
inv AS (
    SELECT i.* FROM invoices i WHERE i.account_id = :account_id {_touched("i", scoped)}
),
cases AS (
    SELECT c.invoice_number,
        sum(c.written_off_amount) AS written_off,
        coalesce(sum(greatest(c.amount - c.recovered_amount - c.written_off_amount, 0))
            FILTER (WHERE c.status IN {DISPUTED_CASE}), 0) AS disputed,
        bool_or(c.status IN {DISPUTED_CASE}) AS is_disputed,
        bool_or(c.status IN {RECOVERED_CASE}) AS any_recovered
    FROM refund_cases c
    WHERE c.account_id = :account_id AND c.invoice_number IS NOT NULL {_touched("c", scoped)}
    GROUP BY c.invoice_number
),
j AS (
    SELECT coalesce(i.invoice_number, r.entries_of) AS invoice_number, i.id AS invoice_id,
        i.currency AS i_currency, i.invoice_date AS i_invoice_date, i.due_on AS i_due_on,
        i.po_number AS i_po_number, i.store_id AS i_store_id, i.vendor_code AS i_vendor_code, i.amount AS i_amount,
        r.*,
        coalesce(r.cur_lo <> i.currency OR r.cur_hi <> i.currency, false) AS convert
    FROM raw r
    FULL JOIN inv i ON i.invoice_number = r.entries_of
    WHERE i.id IS NOT NULL OR r.n_invoice > 0
),
base AS (
    SELECT j.invoice_number,
        j.invoice_id,
        coalesce(j.i_currency, {_from_entries("min(x.currency) FILTER (WHERE x.entry_type = 'invoice')")}) AS currency,
        coalesce(j.i_invoice_date, j.e_invoice_date, j.first_on) AS invoice_date,
        coalesce(j.i_due_on, j.e_due_on) AS due_on,
        coalesce(j.i_po_number, {_from_entries("min(x.po_number)")}) AS po_number,
        coalesce(j.i_store_id, {_from_entries("min(x.store_id::text)")}::uuid) AS store_id,
        coalesce(j.i_vendor_code, {_from_entries("min(x.vendor_code)")}) AS vendor_code,
        CASE WHEN j.n_invoice > 0 THEN coalesce({money("invoiced")}, 0) ELSE j.i_amount END AS invoiced,
        coalesce({money("paid")}, 0) AS paid,
        coalesce({money("reversed")}, 0) AS reversed,
        CASE WHEN {money("deducted_gross")} IS NULL THEN '{{}}' ELSE {_deductions_json(money)} END AS deductions,
        coalesce({money("deducted_gross")}, 0) AS deducted_gross,
        -- invoiced - paid - deducted_gross + reversed, summed once by the aggregate: every entry type is in exactly
        -- one of the four (the ledger's check constraint), and numeric sums are exact in any order
        CASE WHEN j.n_invoice > 0 THEN coalesce({money("total")}, 0)
            ELSE j.i_amount + coalesce({money("total")}, 0) END AS open_balance,
        coalesce(c.written_off, 0) AS written_off,
        coalesce(c.disputed, 0) AS disputed,
        coalesce(c.is_disputed, false) AS is_disputed,
        coalesce(c.any_recovered, false) AS any_recovered,
        CASE WHEN j.convert THEN {pending} ELSE 0 END AS unconverted,
        coalesce(j.entry_count, 0) AS entry_count,
        j.last_on
    FROM j
{conversion}    LEFT JOIN cases c ON c.invoice_number = j.invoice_number
),
m AS (
    SELECT CAST(:account_id AS uuid) AS account_id, invoice_number, invoice_id, currency, invoice_date, due_on,
        po_number, store_id, vendor_code, invoiced, paid, deducted_gross - written_off AS deducted, deductions,
        reversed, written_off, disputed,
        open_balance,
        greatest(deducted_gross - written_off - reversed, 0) AS open_deductions,
        CASE
            WHEN is_disputed THEN 'disputed'
            WHEN open_balance < -{TOLERANCE} THEN 'overpaid'
            WHEN reversed > 0 OR any_recovered THEN 'recovered'
            WHEN open_balance <= {TOLERANCE} THEN CASE WHEN deducted_gross <> 0 THEN 'short_paid' ELSE 'paid' END
            WHEN paid = 0 THEN 'unpaid'
            ELSE 'unexplained_short'
        END AS status,
        unconverted AS unconverted_entries, entry_count, last_on AS last_activity_on
    FROM base
),
changed AS (
    SELECT m.* FROM m
    LEFT JOIN invoice_balances o ON o.account_id = :account_id AND o.invoice_number = m.invoice_number
    WHERE o.invoice_number IS NULL OR m.unconverted_entries < 0 OR {_distinct("o", "m")}
)
-- the breakdown was built and compared as text; only the rows written become json
INSERT INTO rec_new ({BALANCE_COLUMNS})
SELECT {BALANCE_COLUMNS.replace(" deductions,", " CAST(deductions AS json),")} FROM changed
"""


SESSION_SETTINGS = """
SELECT set_config('work_mem', :work_mem, true), set_config('jit', 'off', true),
    set_config('random_page_cost', coalesce(CAST(:random_page_cost AS text), current_setting('random_page_cost')), true)
"""
"""The run's planner settings, local to its transaction, in one round trip (``random_page_cost`` NULL: unchanged)."""

# Gone with the transaction, committed or rolled back, so a run never finds a stale one; a run drops them
# itself at its end only for a second run in the same transaction (tests).
CREATE_WORK_TABLE = "CREATE TEMP TABLE rec_new (LIKE invoice_balances INCLUDING DEFAULTS) ON COMMIT DROP"
DROP_WORK_TABLES = "DROP TABLE IF EXISTS rec_new, rec_prev"

TOUCHED_BY_IMPORT = """
WITH last_run AS (
    -- cases worked since shortly before the last successful run started (or ever, before the first)
    SELECT coalesce(max(started_at) - interval '1 minute', '-infinity'::timestamptz) AS cases_since
    FROM reconciliation_runs WHERE account_id = :account_id AND status = 'succeeded'
)
SELECT e.invoice_number FROM ledger_entries e
WHERE e.account_id = :account_id AND e.source_import_id = :import_id AND e.invoice_number IS NOT NULL
UNION
SELECT i.invoice_number FROM invoices i WHERE i.account_id = :account_id AND i.source_import_id = :import_id
UNION
-- refund cases worked since the last run (disputed, recovered, written off) change their invoices too
SELECT c.invoice_number FROM refund_cases c, last_run
WHERE c.account_id = :account_id AND c.invoice_number IS NOT NULL AND c.updated_at >= last_run.cases_since
"""

CONVERSION_PENDING_NUMBERS = f"""
DELETE FROM rec_new WHERE unconverted_entries = {CONVERSION_PENDING} RETURNING invoice_number
"""

COUNT_BALANCES = """
SELECT count(*) FROM invoice_balances b
WHERE b.account_id = :account_id {scope}
"""
"""Invoices matched by a run: every computed invoice has a balance row (and balances are never orphaned, as
neither invoices nor ledger entries are deleted), so after the upsert this counts them without the matching
statement having to count every unchanged row."""

RECORD_NEWLY_UNEXPLAINED = """
-- one event per invoice this run made unexplained_short, with the invoice as the API returns it
INSERT INTO events (account_id, id, type, data)
SELECT CAST(:account_id AS uuid), gen_random_uuid(), :event_type, jsonb_build_object(
    'invoice_number', n.invoice_number, 'status', n.status, 'invoice_date', n.invoice_date, 'due_on', n.due_on,
    'po_number', n.po_number, 'store_id', n.store_id, 'vendor_code', n.vendor_code,
    'invoiced', jsonb_build_object('amount', n.invoiced::text, 'currency', n.currency),
    'paid', jsonb_build_object('amount', n.paid::text, 'currency', n.currency),
    'deducted', jsonb_build_object('amount', n.deducted::text, 'currency', n.currency),
    'open_balance', jsonb_build_object('amount', n.open_balance::text, 'currency', n.currency))
FROM rec_new n
LEFT JOIN invoice_balances b ON b.account_id = :account_id AND b.invoice_number = n.invoice_number
WHERE n.status = 'unexplained_short' AND b.status IS DISTINCT FROM 'unexplained_short'
ORDER BY n.invoice_number
RETURNING id
"""
"""Set-based (one statement, not an ORM object per event); the caller announces the ids for delivery."""

SAVE_PREVIOUS = """
CREATE TEMP TABLE rec_prev ON COMMIT DROP AS
SELECT b.* FROM invoice_balances b
WHERE b.account_id = :account_id AND b.invoice_number IN (SELECT invoice_number FROM rec_new)
"""

UPSERT_BALANCES = f"""
INSERT INTO invoice_balances AS b ({BALANCE_COLUMNS})
SELECT {BALANCE_COLUMNS} FROM rec_new
ON CONFLICT (account_id, invoice_number) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _UPDATABLE)}, matched_at = clock_timestamp()
WHERE {_distinct("b", "excluded")}
"""

_ROLLUP_MEASURES = (
    "invoice_count, invoiced, paid, deducted, reversed, written_off, disputed, open_balance, open_deductions, "
    "unexplained_short"
)
_ROLLUP_KEY = "account_id, grain, period, store_id, vendor_code, currency, deduction_type"
_ROLLUP_SUMS = ", ".join(f"sum({m})" for m in _ROLLUP_MEASURES.split(", "))


def _rollup_select(source: str, *, months: bool) -> str:
    """Rollup rows (key and measures, not yet summed per key) of ``source``: invoice balance rows with a ``sign``
    column (1 to add a row, -1 to take it away).

    Grains: ``day`` / ``month`` by invoice date (with one row per deduction type) for the summary, and ``due_day``
    / ``due_month`` by due date (totals only) for aging; months only if asked. The invoices are first summed per
    (invoice date, due date, store, vendor code, currency), and per deduction type, so each invoice's measures
    are added once, not once per grain: measured at a million invoices, an incremental run's 3,230 invoices made
    19,382 grain rows (~70-100 ms of the run) before they were grouped into 360 keys.
    """
    grains = "('day', t.invoice_date), ('due_day', t.due_on)"
    type_grains = "('day', t.invoice_date)"
    if months:
        grains += (
            ", ('month', date_trunc('month', t.invoice_date)::date), ('due_month', date_trunc('month', t.due_on)::date)"
        )
        type_grains += ", ('month', date_trunc('month', t.invoice_date)::date)"
    shared = f"""x.invoice_date, coalesce(x.due_on, x.invoice_date) AS due_on,
        coalesce(x.store_id, '{NIL_UUID}'::uuid) AS store_id, coalesce(x.vendor_code, '') AS vendor_code, x.currency"""
    # (source read twice rather than as one CTE: a full rebuild's million rows would be copied to a tuplestore)
    return f"""
WITH totals AS (
    SELECT {shared}, sum(x.sign) AS n, sum(x.sign * x.invoiced) AS invoiced, sum(x.sign * x.paid) AS paid,
        sum(x.sign * x.deducted) AS deducted, sum(x.sign * x.reversed) AS reversed,
        sum(x.sign * x.written_off) AS written_off, sum(x.sign * x.disputed) AS disputed,
        sum(x.sign * x.open_balance) AS open_balance, sum(x.sign * x.open_deductions) AS open_deductions,
        sum(x.sign * x.open_balance) FILTER (WHERE x.status = 'unexplained_short') AS unexplained_short
    FROM ({source}) x
    GROUP BY 1, 2, 3, 4, 5
),
per_type AS (
    SELECT {shared}, d.key AS deduction_type, sum(x.sign) AS n, sum(x.sign * d.value::numeric) AS deducted
    FROM ({source}) x CROSS JOIN LATERAL json_each_text(x.deductions) d
    GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT CAST(:account_id AS uuid) AS account_id, g.grain, g.period, t.store_id, t.vendor_code, t.currency,
    '' AS deduction_type, t.n AS invoice_count, t.invoiced, t.paid, t.deducted, t.reversed, t.written_off,
    t.disputed, t.open_balance, t.open_deductions, coalesce(t.unexplained_short, 0) AS unexplained_short
FROM totals t CROSS JOIN LATERAL (VALUES {grains}) AS g(grain, period)
UNION ALL
SELECT CAST(:account_id AS uuid), g.grain, g.period, t.store_id, t.vendor_code, t.currency, t.deduction_type, t.n,
    0, 0, t.deducted, 0, 0, 0, 0, 0, 0
FROM per_type t CROSS JOIN LATERAL (VALUES {type_grains}) AS g(grain, period)
"""


_REPLACED_BALANCES = "SELECT -1 AS sign, * FROM rec_prev"
"""The balance rows an incremental run replaces, taken away."""
_RUN_CHANGES = f"SELECT 1 AS sign, * FROM rec_new UNION ALL {_REPLACED_BALANCES}"
"""What an incremental run changed: its new balances added, the rows they replace taken away."""
_ACCOUNT_BALANCES = "SELECT 1 AS sign, * FROM invoice_balances WHERE account_id = :account_id"


APPLY_ROLLUP_DELTA = f"""
INSERT INTO balance_rollups AS r ({_ROLLUP_KEY}, {_ROLLUP_MEASURES})
SELECT {_ROLLUP_KEY}, {_ROLLUP_SUMS}
FROM ({_rollup_select(_RUN_CHANGES, months=True)}) d
GROUP BY {_ROLLUP_KEY}
ON CONFLICT ({_ROLLUP_KEY}) DO UPDATE SET
    {", ".join(f"{m} = r.{m} + excluded.{m}" for m in _ROLLUP_MEASURES.split(", "))}
"""

# Only keys the previous balances counted in can have dropped to zero: probe those (a primary-key lookup each,
# forced by the lateral), never the account's rollups. Measured: as a join, with the rollups' statistics stale
# after a run, it was planned as a hash of every rollup row of the account (64,676 rows filtered at 20,000
# invoices, 22 ms, growing with the account). ctid is stable here: the run holds the account's lock.
DELETE_EMPTY_ROLLUPS = f"""
DELETE FROM balance_rollups r
WHERE r.ctid = ANY (ARRAY(
    SELECT z.ctid
    FROM (SELECT DISTINCT grain, period, store_id, vendor_code, currency, deduction_type
          FROM ({_rollup_select(_REPLACED_BALANCES, months=True)}) d) k
    CROSS JOIN LATERAL (
        SELECT x.ctid FROM balance_rollups x
        WHERE x.account_id = :account_id AND x.grain = k.grain AND x.deduction_type = k.deduction_type
            AND x.period = k.period AND x.store_id = k.store_id AND x.vendor_code = k.vendor_code
            AND x.currency = k.currency AND x.invoice_count = 0
    ) z
))
"""

REBUILD_ROLLUPS = [
    "DELETE FROM balance_rollups WHERE account_id = :account_id",
    f"""
INSERT INTO balance_rollups ({_ROLLUP_KEY}, {_ROLLUP_MEASURES})
SELECT {_ROLLUP_KEY}, {_ROLLUP_SUMS}
FROM ({_rollup_select(_ACCOUNT_BALANCES, months=False)}) d
GROUP BY {_ROLLUP_KEY}
""",
    # month grains from the (far fewer) day rows
    f"""
INSERT INTO balance_rollups ({_ROLLUP_KEY}, {_ROLLUP_MEASURES})
SELECT account_id, CASE grain WHEN 'day' THEN 'month' ELSE 'due_month' END, date_trunc('month', period)::date,
    store_id, vendor_code, currency, deduction_type, {_ROLLUP_SUMS}
FROM balance_rollups
WHERE account_id = :account_id AND grain IN ('day', 'due_day')
GROUP BY 1, 2, 3, 4, 5, 6, 7
""",
]

# --- unmatched payments -------------------------------------------------------------------------------


_CANDIDATE_COLUMNS = "b.invoice_number, b.open_balance, b.currency, b.invoice_date, b.due_on, b.po_number"
_REST_OF_RANGE = f"""b.account_id = :account_id AND b.currency = l.currency
                AND b.open_balance BETWEEN greatest(l.amount - greatest({TOLERANCE}, 0.02 * abs(l.amount)), {TOLERANCE})
                    AND l.amount + greatest({TOLERANCE}, 0.02 * abs(l.amount))
                AND abs(b.open_balance - l.amount) > {TOLERANCE}
                AND NOT coalesce(l.po_number IS NOT NULL AND b.po_number = l.po_number AND b.open_balance > {TOLERANCE},
                    false)"""
"""Invoices in the 2 % amount range found by neither of the other searches (within a cent, same PO): each scores
0.3, plus 0.2 for the date, so only the first three by number of each kind can rank."""


def refresh_unmatched(scoped: bool) -> list[str]:
    """Drop rows whose invoice is now known, then add unknown-invoice payment lines (of the import, or all)."""
    line_filter = (
        "AND pl.invoice_number = ANY(CAST(:numbers AS varchar[])) AND pl.source_import_id = :import_id"
        if scoped
        else ""
    )
    first = (
        "DELETE FROM unmatched_payments u WHERE u.account_id = :account_id AND EXISTS ("
        "SELECT 1 FROM invoice_balances b WHERE b.account_id = :account_id AND b.invoice_number = u.invoice_number)"
        if scoped
        else "DELETE FROM unmatched_payments WHERE account_id = :account_id"
    )
    insert = f"""
INSERT INTO unmatched_payments (account_id, payment_line_id, payment_number, invoice_number, payment_date, po_number,
    amount, currency, candidates)
WITH unknown AS MATERIALIZED (
    -- first the few lines whose invoice is unknown, then their payment and entry: planned as one join, the
    -- import's lines were estimated at 1 row, and every one (3,068 for a 10,000-line import) was joined to its
    -- payment (a scan of all payments each) and entry before the anti-join kept 4: ~200 ms at a million
    -- invoices, 23-38 ms for the whole phase since
    SELECT pl.id, pl.payment_number, pl.invoice_number, pl.currency, pl.amount_paid, pl.invoice_amount,
        pl.ledger_entry_id
    FROM payment_lines pl
    WHERE pl.account_id = :account_id AND pl.entry_type = 'payment' {line_filter}
        AND NOT EXISTS (SELECT 1 FROM invoice_balances b
                        WHERE b.account_id = :account_id AND b.invoice_number = pl.invoice_number)
),
lines AS (
    SELECT pl.id, pl.payment_number, pl.invoice_number, pl.currency,
        coalesce(pl.amount_paid, pl.invoice_amount, -le.amount, 0) AS amount,
        coalesce(p.payment_date, le.occurred_on) AS payment_date, le.po_number
    FROM unknown pl
    LEFT JOIN payments p ON p.account_id = :account_id AND p.payment_number = pl.payment_number
    LEFT JOIN ledger_entries le ON le.account_id = :account_id AND le.id = pl.ledger_entry_id
)
SELECT CAST(:account_id AS uuid), l.id, l.payment_number, l.invoice_number, l.payment_date, l.po_number, l.amount,
    l.currency,
    coalesce(c.candidates, '[]'::jsonb)
FROM lines l
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object(
            'invoice_number', k.invoice_number, 'open_balance', k.open_balance::text, 'currency', k.currency,
            'invoice_date', k.invoice_date, 'due_on', k.due_on, 'po_number', k.po_number,
            'score', k.score, 'reasons', to_jsonb(k.reasons))
        ORDER BY k.score DESC, k.invoice_number) AS candidates
    FROM (
        SELECT b.invoice_number, b.open_balance, b.currency, b.invoice_date, b.due_on, b.po_number,
            s.amount_score + s.po_score + s.date_score AS score,
            array_remove(ARRAY[
                CASE WHEN s.amount_score > 0 THEN 'amount' END,
                CASE WHEN s.po_score > 0 THEN 'po_number' END,
                CASE WHEN s.date_score > 0 THEN 'date' END], NULL) AS reasons
        FROM (
            -- The three best by (score, invoice number) without scoring every invoice of similar amount (a 2 %
            -- range holds thousands of a million): all invoices of the same PO, all within a cent, and of the
            -- rest of the range only the first three by number with the date bonus and the first three without.
            SELECT {_CANDIDATE_COLUMNS} FROM invoice_balances b
            WHERE b.account_id = :account_id AND l.po_number IS NOT NULL AND b.po_number = l.po_number
                AND b.currency = l.currency AND b.open_balance > {TOLERANCE}
            UNION
            SELECT {_CANDIDATE_COLUMNS} FROM invoice_balances b
            WHERE b.account_id = :account_id AND b.currency = l.currency
                AND b.open_balance BETWEEN greatest(l.amount - {TOLERANCE}, {TOLERANCE}) AND l.amount + {TOLERANCE}
            UNION
            -- (OFFSET 0 keeps each an amount-range scan sorted afterwards: ordered by the invoice-number key
            -- instead, the planner may walk the whole table looking for three rows near a date)
            (SELECT * FROM (
                SELECT {_CANDIDATE_COLUMNS} FROM invoice_balances b
                WHERE {_REST_OF_RANGE} AND l.payment_date IS NOT NULL
                    AND abs(coalesce(b.due_on, b.invoice_date) - l.payment_date) <= 15
                OFFSET 0) r
             ORDER BY r.invoice_number LIMIT 3)
            UNION
            (SELECT * FROM (
                SELECT {_CANDIDATE_COLUMNS} FROM invoice_balances b
                WHERE {_REST_OF_RANGE}
                    AND (l.payment_date IS NULL OR abs(coalesce(b.due_on, b.invoice_date) - l.payment_date) > 15)
                OFFSET 0) r
             ORDER BY r.invoice_number LIMIT 3)
        ) b
        CROSS JOIN LATERAL (
            SELECT
                CASE WHEN abs(b.open_balance - l.amount) <= {TOLERANCE} THEN 0.5
                     WHEN abs(b.open_balance - l.amount) <= 0.02 * abs(l.amount) THEN 0.3 ELSE 0 END AS amount_score,
                CASE WHEN l.po_number IS NOT NULL AND b.po_number = l.po_number THEN 0.3 ELSE 0 END AS po_score,
                CASE WHEN l.payment_date IS NOT NULL
                          AND abs(coalesce(b.due_on, b.invoice_date) - l.payment_date) <= 15 THEN 0.2
                     ELSE 0 END AS date_score
        ) s
        ORDER BY score DESC, b.invoice_number
        LIMIT 3
    ) k
) c ON true
ON CONFLICT (account_id, payment_line_id) DO NOTHING
"""
    return [first, insert]


# --- deduction facts (trend analytics) --------------------------------------------------------------------

_FACTS_SELECT = f"""
INSERT INTO deduction_facts AS f (account_id, month, entry_type, store_id, asin, issue_type, currency, amount,
    entry_count)
SELECT CAST(:account_id AS uuid), date_trunc('month', e.occurred_on)::date, e.entry_type,
    coalesce(e.store_id, '{NIL_UUID}'::uuid), coalesce(e.asin, ''),
    -- a chargeback's issue type is the first part of its description ("<issue type> / <sub-type>", as the
    -- chargebacks import writes it); a mapped file may also carry it in the raw row
    left(coalesce(nullif(e.raw->>'issue_type', ''),
                  CASE WHEN e.entry_type = 'chargeback' THEN split_part(coalesce(e.description, ''), ' / ', 1) END,
                  ''), 100),
    e.currency, sum(e.amount), count(*)
FROM ledger_entries e
WHERE e.account_id = :account_id {{filter}}
GROUP BY 2, 3, 4, 5, 6, 7
"""

ADD_IMPORT_FACTS = (
    # Claim the import and add its entries in one statement (one round trip): the facts insert reads the
    # claim's output, so an import already claimed (a re-delivery) adds nothing; returns 1 if claimed, else 0.
    """
WITH claimed AS (
    INSERT INTO reconciliation_applied_imports (account_id, import_id)
    VALUES (CAST(:account_id AS uuid), CAST(:import_id AS uuid))
    ON CONFLICT DO NOTHING RETURNING import_id
),
added AS ("""
    + _FACTS_SELECT.format(filter="AND e.source_import_id = :import_id AND EXISTS (SELECT 1 FROM claimed)")
    + " ON CONFLICT (account_id, month, entry_type, store_id, asin, issue_type, currency) DO UPDATE SET "
    "amount = f.amount + excluded.amount, entry_count = f.entry_count + excluded.entry_count RETURNING 1"
    """
)
SELECT count(*) FROM claimed
"""
)
REBUILD_FACTS = [
    # Claim every import visible now; entries of an import committed after this statement are left to that
    # import's own (incremental) run, so no entry is ever counted twice or never.
    """
INSERT INTO reconciliation_applied_imports (account_id, import_id)
SELECT i.account_id, i.id FROM imports i
WHERE i.account_id = :account_id
    AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.account_id = :account_id AND e.source_import_id = i.id)
ON CONFLICT DO NOTHING
""",
    "DELETE FROM deduction_facts WHERE account_id = :account_id",
    _FACTS_SELECT.format(
        filter="AND (e.source_import_id IS NULL OR e.source_import_id IN ("
        "SELECT import_id FROM reconciliation_applied_imports WHERE account_id = :account_id))"
    ),
]

REBUILD_PO_FACTS = [
    "DELETE FROM purchase_order_facts WHERE account_id = :account_id",
    """
INSERT INTO purchase_order_facts (account_id, month, asin, currency, item_count, ordered_units,
    acknowledged_units, received_units, ordered_cost, costed_units)
SELECT CAST(:account_id AS uuid),
    date_trunc('month', coalesce(po.purchase_order_date, po.created_at) AT TIME ZONE 'UTC')::date,
    coalesce(it.asin, ''), coalesce(it.currency, po.currency, ''), count(*),
    coalesce(sum(it.ordered_quantity), 0), coalesce(sum(it.acknowledged_quantity), 0),
    coalesce(sum(it.received_quantity), 0), coalesce(sum(it.net_cost * it.ordered_quantity), 0),
    coalesce(sum(it.ordered_quantity) FILTER (WHERE it.net_cost IS NOT NULL), 0)
FROM purchase_order_items it
JOIN purchase_orders po ON po.account_id = it.account_id AND po.id = it.purchase_order_id
WHERE it.account_id = :account_id
GROUP BY 2, 3, 4
""",
]

# --- the ERP journal ----------------------------------------------------------------------------------------


def journalise(scoped: bool) -> str:
    """Journalise every ledger entry not yet journalised (those of the import, or all): one row each, whose two
    balanced feed lines take the next two sequence numbers (see ``models.JournalEntry``).

    Invoices are the ERP's own documents and are not re-posted. ``seq`` continues from the account's last line;
    callers hold the account's reconciliation lock, so sequences are assigned (and committed) one run at a time.
    Returns the rows' count; the run reports twice that many lines.
    """
    entry_filter = "AND e.source_import_id = :import_id" if scoped else ""
    return f"""
INSERT INTO journal_entries (account_id, seq, entry_date, amount, currency, ledger_entry_id, entry_type,
    invoice_number, payment_number, reference, store_id)
WITH start AS (SELECT coalesce(max(seq) + 1, 0) AS s FROM journal_entries WHERE account_id = :account_id),
src AS (
    SELECT e.* FROM ledger_entries e
    WHERE e.account_id = :account_id AND e.entry_type <> 'invoice' {entry_filter}
        AND NOT EXISTS (SELECT 1 FROM journal_entries j
                        WHERE j.account_id = :account_id AND j.ledger_entry_id = e.id)
)
SELECT CAST(:account_id AS uuid),
    start.s + 2 * row_number() OVER (ORDER BY src.occurred_on, src.created_at, src.id) - 1,
    src.occurred_on, src.amount, src.currency, src.id, src.entry_type, src.invoice_number, src.payment_number,
    src.reference, src.store_id
FROM src
CROSS JOIN start
"""
