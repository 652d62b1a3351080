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


def compute_balances(scoped: bool) -> str:
    """INSERT into ``rec_new`` one computed balance per invoice (all, or those in ``:numbers``)."""
    per_type = ",\n        ".join(
        f"-sum(x.amt) FILTER (WHERE e.entry_type = '{t}') AS \"d_{t}\"" for t in DEDUCTION_LIKE
    )
    deductions_json = ", ".join(f"'{t}', a.\"d_{t}\"" for t in DEDUCTION_LIKE)
    deducted_gross = " + ".join(f'coalesce(a."d_{t}", 0)' for t in DEDUCTION_LIKE)
    return f"""
INSERT INTO rec_new ({BALANCE_COLUMNS})
WITH agg AS (
    SELECT e.invoice_number,
        min(e.currency) FILTER (WHERE e.entry_type = 'invoice') AS e_currency,
        min(e.occurred_on) FILTER (WHERE e.entry_type = 'invoice') AS e_invoice_date,
        min(e.occurred_on) AS first_on,
        max(e.due_on) FILTER (WHERE e.entry_type = 'invoice') AS e_due_on,
        min(e.po_number) AS e_po_number,
        min(e.vendor_code) AS e_vendor_code,
        min(e.store_id::text) AS e_store_id,
        count(*) FILTER (WHERE e.entry_type = 'invoice') AS n_invoice,
        sum(x.amt) FILTER (WHERE e.entry_type = 'invoice') AS invoiced,
        -sum(x.amt) FILTER (WHERE e.entry_type = 'payment') AS paid,
        sum(x.amt) FILTER (WHERE e.entry_type IN {_in(REVERSAL_TYPES)}) AS reversed,
        {per_type},
        count(*) FILTER (WHERE x.amt IS NULL) AS unconverted,
        count(*) AS entry_count,
        max(e.occurred_on) AS last_on
    FROM ledger_entries e
    LEFT JOIN invoices i ON i.account_id = e.account_id AND i.invoice_number = e.invoice_number
    LEFT JOIN payments p
        ON e.currency <> i.currency AND p.account_id = e.account_id AND p.payment_number = e.payment_number
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN i.currency IS NULL OR e.currency = i.currency THEN e.amount
            WHEN p.exchange_rate > 0 AND p.currency = i.currency AND p.payment_currency = e.currency
                THEN round(e.amount / p.exchange_rate, 4)
            WHEN p.exchange_rate > 0 AND p.currency = e.currency AND p.payment_currency = i.currency
                THEN round(e.amount * p.exchange_rate, 4)
        END AS amt
    ) x
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
base AS (
    SELECT coalesce(i.invoice_number, a.invoice_number) AS invoice_number,
        i.id AS invoice_id,
        coalesce(i.currency, a.e_currency) AS currency,
        coalesce(i.invoice_date, a.e_invoice_date, a.first_on) AS invoice_date,
        coalesce(i.due_on, a.e_due_on) AS due_on,
        coalesce(i.po_number, a.e_po_number) AS po_number,
        coalesce(i.store_id, a.e_store_id::uuid) AS store_id,
        coalesce(i.vendor_code, a.e_vendor_code) AS vendor_code,
        CASE WHEN a.n_invoice > 0 THEN coalesce(a.invoiced, 0) ELSE i.amount END AS invoiced,
        coalesce(a.paid, 0) AS paid,
        coalesce(a.reversed, 0) AS reversed,
        coalesce(jsonb_strip_nulls(jsonb_build_object({deductions_json})), '{{}}'::jsonb) AS deductions,
        {deducted_gross} AS deducted_gross,
        coalesce(c.written_off, 0) AS written_off,
        coalesce(c.disputed, 0) AS disputed,
        coalesce(c.is_disputed, false) AS is_disputed,
        coalesce(c.any_recovered, false) AS any_recovered,
        coalesce(a.unconverted, 0) AS unconverted,
        coalesce(a.entry_count, 0) AS entry_count,
        a.last_on
    FROM agg a
    FULL JOIN inv i ON i.invoice_number = a.invoice_number
    LEFT JOIN cases c ON c.invoice_number = coalesce(i.invoice_number, a.invoice_number)
    WHERE i.id IS NOT NULL OR a.n_invoice > 0
),
m AS (
    SELECT b.*, b.invoiced - b.paid - b.deducted_gross + b.reversed AS open_balance FROM base b
)
SELECT CAST(:account_id AS uuid), invoice_number, invoice_id, currency, invoice_date, due_on, po_number, store_id,
    vendor_code,
    invoiced, paid, deducted_gross - written_off, deductions, reversed, written_off, disputed, open_balance,
    greatest(deducted_gross - written_off - reversed, 0),
    CASE
        WHEN is_disputed THEN 'disputed'
        WHEN open_balance < -{TOLERANCE} THEN 'overpaid'
        WHEN reversed > 0 OR any_recovered THEN 'recovered'
        WHEN open_balance <= {TOLERANCE} THEN CASE WHEN deducted_gross <> 0 THEN 'short_paid' ELSE 'paid' END
        WHEN paid = 0 THEN 'unpaid'
        ELSE 'unexplained_short'
    END,
    unconverted, entry_count, last_on
FROM m
"""


CREATE_WORK_TABLES = [
    "DROP TABLE IF EXISTS rec_new, rec_prev",
    "CREATE TEMP TABLE rec_new (LIKE invoice_balances INCLUDING DEFAULTS)",
]
DROP_WORK_TABLES = "DROP TABLE IF EXISTS rec_new, rec_prev"

TOUCHED_BY_IMPORT = """
SELECT e.invoice_number FROM ledger_entries e
WHERE e.account_id = :account_id AND e.source_import_id = :import_id AND e.invoice_number IS NOT NULL
UNION
SELECT i.invoice_number FROM invoices i WHERE i.account_id = :account_id AND i.source_import_id = :import_id
UNION
-- refund cases worked since the last run (disputed, recovered, written off) change their invoices too
SELECT c.invoice_number FROM refund_cases c
WHERE c.account_id = :account_id AND c.invoice_number IS NOT NULL AND c.updated_at >= :cases_since
"""

CASES_SINCE = """
SELECT coalesce(max(started_at) - interval '1 minute', '-infinity'::timestamptz) FROM reconciliation_runs
WHERE account_id = :account_id AND status = 'succeeded'
"""

NEWLY_UNEXPLAINED = """
SELECT n.invoice_number, n.currency, n.invoice_date, n.due_on, n.po_number, n.store_id, n.vendor_code,
    n.invoiced, n.paid, n.deducted, n.open_balance
FROM rec_new n
LEFT JOIN invoice_balances b ON b.account_id = :account_id AND b.invoice_number = n.invoice_number
WHERE n.status = 'unexplained_short' AND b.status IS DISTINCT FROM 'unexplained_short'
ORDER BY n.invoice_number
"""

SAVE_PREVIOUS = """
CREATE TEMP TABLE rec_prev AS
SELECT b.* FROM invoice_balances b
WHERE b.account_id = :account_id AND b.invoice_number IN (SELECT invoice_number FROM rec_new)
"""

UPSERT_BALANCES = f"""
INSERT INTO invoice_balances AS b ({BALANCE_COLUMNS})
SELECT {BALANCE_COLUMNS} FROM rec_new
ON CONFLICT (account_id, invoice_number) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _UPDATABLE)}, matched_at = clock_timestamp()
WHERE ({", ".join(f"b.{c}" for c in _UPDATABLE)}) IS DISTINCT FROM ({", ".join(f"excluded.{c}" for c in _UPDATABLE)})
"""

_ROLLUP_MEASURES = (
    "invoice_count, invoiced, paid, deducted, reversed, written_off, disputed, open_balance, open_deductions, "
    "unexplained_short"
)
_ROLLUP_KEY = "account_id, grain, period, store_id, vendor_code, currency, deduction_type"
_ROLLUP_SUMS = ", ".join(f"sum({m})" for m in _ROLLUP_MEASURES.split(", "))


def _rollup_select(source: str, sign: str, *, months: bool) -> str:
    """Day-grain rollup rows of ``source`` (invoice balance rows) times ``sign``; also month grains if asked.

    Grains: ``day`` / ``month`` by invoice date (with one row per deduction type) for the summary, and
    ``due_day`` / ``due_month`` by due date (totals only) for aging.
    """
    grains = "('day', x.invoice_date), ('due_day', coalesce(x.due_on, x.invoice_date))"
    if months:
        grains += (
            ", ('month', date_trunc('month', x.invoice_date)::date)"
            ", ('due_month', date_trunc('month', coalesce(x.due_on, x.invoice_date))::date)"
        )
    return f"""
SELECT CAST(:account_id AS uuid) AS account_id, g.grain, g.period,
    coalesce(x.store_id, '{NIL_UUID}'::uuid) AS store_id, coalesce(x.vendor_code, '') AS vendor_code,
    x.currency, t.deduction_type, {sign} * t.n AS invoice_count, {sign} * t.invoiced AS invoiced,
    {sign} * t.paid AS paid, {sign} * t.deducted AS deducted, {sign} * t.reversed AS reversed,
    {sign} * t.written_off AS written_off, {sign} * t.disputed AS disputed,
    {sign} * t.open_balance AS open_balance, {sign} * t.open_deductions AS open_deductions,
    {sign} * t.unexplained_short AS unexplained_short
FROM {source} x
CROSS JOIN LATERAL (VALUES {grains}) AS g(grain, period)
CROSS JOIN LATERAL (
    SELECT '' AS deduction_type, 1 AS n, x.invoiced, x.paid, x.deducted, x.reversed, x.written_off, x.disputed,
        x.open_balance, x.open_deductions,
        CASE WHEN x.status = 'unexplained_short' THEN x.open_balance ELSE 0 END AS unexplained_short
    UNION ALL
    SELECT d.key, 1, 0, 0, d.value::numeric, 0, 0, 0, 0, 0, 0 FROM jsonb_each_text(x.deductions) d
    WHERE g.grain IN ('day', 'month')
) t
"""


APPLY_ROLLUP_DELTA = f"""
INSERT INTO balance_rollups AS r ({_ROLLUP_KEY}, {_ROLLUP_MEASURES})
SELECT {_ROLLUP_KEY}, {_ROLLUP_SUMS}
FROM ({_rollup_select("rec_new", "1", months=True)} UNION ALL {_rollup_select("rec_prev", "-1", months=True)}) d
GROUP BY {_ROLLUP_KEY}
ON CONFLICT ({_ROLLUP_KEY}) DO UPDATE SET
    {", ".join(f"{m} = r.{m} + excluded.{m}" for m in _ROLLUP_MEASURES.split(", "))}
"""

DELETE_EMPTY_ROLLUPS = "DELETE FROM balance_rollups WHERE account_id = :account_id AND invoice_count = 0"

REBUILD_ROLLUPS = [
    "DELETE FROM balance_rollups WHERE account_id = :account_id",
    f"""
INSERT INTO balance_rollups ({_ROLLUP_KEY}, {_ROLLUP_MEASURES})
SELECT {_ROLLUP_KEY}, {_ROLLUP_SUMS}
FROM ({_rollup_select("(SELECT * FROM invoice_balances WHERE account_id = :account_id)", "1", months=False)}) d
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
WITH lines AS (
    SELECT pl.id, pl.payment_number, pl.invoice_number, pl.currency,
        coalesce(pl.amount_paid, pl.invoice_amount, -le.amount, 0) AS amount,
        coalesce(p.payment_date, le.occurred_on) AS payment_date, le.po_number
    FROM payment_lines pl
    LEFT JOIN payments p ON p.account_id = pl.account_id AND p.payment_number = pl.payment_number
    LEFT JOIN ledger_entries le ON le.account_id = pl.account_id AND le.id = pl.ledger_entry_id
    WHERE pl.account_id = :account_id AND pl.entry_type = 'payment' {line_filter}
        AND NOT EXISTS (SELECT 1 FROM invoice_balances b
                        WHERE b.account_id = :account_id AND b.invoice_number = pl.invoice_number)
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
            -- two index-friendly searches (amount range, same PO) instead of one OR that scans
            SELECT {_CANDIDATE_COLUMNS} FROM invoice_balances b
            WHERE b.account_id = :account_id AND b.currency = l.currency
                AND b.open_balance BETWEEN
                    greatest(l.amount - greatest({TOLERANCE}, 0.02 * abs(l.amount)), {TOLERANCE})
                    AND l.amount + greatest({TOLERANCE}, 0.02 * abs(l.amount))
            UNION
            SELECT {_CANDIDATE_COLUMNS} FROM invoice_balances b
            WHERE b.account_id = :account_id AND l.po_number IS NOT NULL AND b.po_number = l.po_number
                AND b.currency = l.currency AND b.open_balance > {TOLERANCE}
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

CLAIM_IMPORT_FOR_FACTS = """
INSERT INTO reconciliation_applied_imports (account_id, import_id)
VALUES (CAST(:account_id AS uuid), CAST(:import_id AS uuid))
ON CONFLICT DO NOTHING RETURNING import_id
"""
ADD_IMPORT_FACTS = (
    _FACTS_SELECT.format(filter="AND e.source_import_id = :import_id")
    + " ON CONFLICT (account_id, month, entry_type, store_id, asin, issue_type, currency) DO UPDATE SET "
    "amount = f.amount + excluded.amount, entry_count = f.entry_count + excluded.entry_count"
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

_REVERSAL_CASE = " ".join(f"WHEN '{r}' THEN '{d}'" for r, d in REVERSAL_OF.items())


def journalise(scoped: bool) -> str:
    """Append two balanced lines per ledger entry not yet journalised (those of the import, or all).

    Debits are positive, credits negative. A payment: cash +, receivable −. A deduction: deduction
    expense (by type) +, receivable −. A reversal: receivable +, recovery income −. Invoices are the ERP's
    own documents and are not re-posted. ``seq`` continues from the account's last line; callers hold
    the account's reconciliation lock, so sequences are assigned (and committed) one run at a time.
    """
    entry_filter = "AND e.source_import_id = :import_id" if scoped else ""
    return f"""
INSERT INTO journal_lines (account_id, seq, entry_date, category, deduction_type, amount, currency,
    ledger_entry_id, entry_type, invoice_number, payment_number, reference, store_id)
WITH start AS (SELECT coalesce(max(seq), 0) AS s FROM journal_lines WHERE account_id = :account_id),
src AS (
    SELECT e.* FROM ledger_entries e
    WHERE e.account_id = :account_id AND e.entry_type <> 'invoice' {entry_filter}
        AND NOT EXISTS (SELECT 1 FROM journal_lines j
                        WHERE j.account_id = :account_id AND j.ledger_entry_id = e.id)
)
SELECT CAST(:account_id AS uuid), start.s + row_number() OVER (ORDER BY src.occurred_on, src.created_at, src.id, l.ord),
    src.occurred_on, l.category, l.deduction_type, l.amount, src.currency, src.id, src.entry_type,
    src.invoice_number, src.payment_number, src.reference, src.store_id
FROM src
CROSS JOIN start
CROSS JOIN LATERAL (VALUES
    (1,
     CASE WHEN src.entry_type = 'payment' THEN 'cash'
          WHEN src.entry_type IN {_in(REVERSAL_TYPES)} THEN 'recovery_income'
          ELSE 'deduction_expense' END,
     CASE WHEN src.entry_type = 'payment' THEN NULL
          WHEN src.entry_type IN {_in(REVERSAL_TYPES)} THEN CASE src.entry_type {_REVERSAL_CASE} END
          ELSE src.entry_type END,
     -src.amount),
    (2, 'receivable', NULL, src.amount)
) AS l(ord, category, deduction_type, amount)
"""
