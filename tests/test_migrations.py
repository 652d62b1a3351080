"""Migrations build the schema the models describe, and step down and up again cleanly."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from acorn_api.migrate import alembic_config, downgrade, upgrade
from acorn_api.settings import to_async_database_url
from tests.conftest import ServerUrls, fresh_database


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(to_async_database_url(url))
    async with engine.connect() as conn:
        # partitions (ledger_entries_p00 …) are not tables of their own in the model
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            )
        )
        names = {r[0] for r in rows}
    await engine.dispose()
    return names - {"alembic_version"}


def test_upgrade_on_an_empty_database_creates_every_table(server_urls: ServerUrls) -> None:
    from acorn_api.models_registry import metadata

    with fresh_database(server_urls.admin_database_url, migrate=False) as url:
        upgrade(url, "heads")
        assert asyncio.run(_tables(url)) == set(metadata.tables)


def test_models_and_migrations_agree(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises when autogenerate would find a difference


def test_downgrade_to_base_and_upgrade_again(server_urls: ServerUrls) -> None:
    with fresh_database(server_urls.admin_database_url) as url:
        downgrade(url, "base")
        assert asyncio.run(_tables(url)) == set()
        upgrade(url, "heads")
        command.check(alembic_config(url))


def test_migration_files_have_one_linear_history(database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"


def test_ledger_entries_are_hash_partitioned_by_account(database_url: str) -> None:
    async def partitions() -> list[str]:
        engine = create_async_engine(to_async_database_url(database_url))
        async with engine.connect() as conn:
            strategy = await conn.scalar(text("SELECT pg_get_partkeydef('ledger_entries'::regclass)"))
            assert strategy == "HASH (account_id)"
            rows = await conn.execute(
                text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'ledger_entries'::regclass")
            )
            names = sorted(r[0] for r in rows)
        await engine.dispose()
        return names

    assert asyncio.run(partitions()) == [f"ledger_entries_p{i:02d}" for i in range(16)]


def test_balance_deductions_become_the_text_matching_writes(server_urls: ServerUrls) -> None:
    """0013 rewrites the stored breakdowns exactly as the matching statement now writes them (so a full run after
    the upgrade finds them unchanged), and 0012 gets its numbers back."""
    from acorn_api.reconciliation import matching_sql

    account = "00000000-0000-4000-8000-000000000001"
    breakdown = {"shortage_claim": "100.0000", "coop": "-12.5000"}

    async def run(url: str, statement: str) -> object:
        engine = create_async_engine(to_async_database_url(url))
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            value = result.scalar() if result.returns_rows else None
        await engine.dispose()
        return value

    with fresh_database(server_urls.admin_database_url, migrate=False) as url:
        upgrade(url, "0012")
        asyncio.run(run(url, f"INSERT INTO accounts (id, name) VALUES ('{account}', 'a')"))
        asyncio.run(
            run(
                url,
                "INSERT INTO invoice_balances (account_id, invoice_number, currency, invoice_date, invoiced, paid, "
                "deducted, deductions, reversed, written_off, disputed, open_balance, open_deductions, status, "
                f"unconverted_entries, entry_count) VALUES ('{account}', 'INV-1', 'USD', '2026-01-01', 1000, 887.5, "
                """87.5, '{"coop": -12.5000, "shortage_claim": 100.0000}', 0, 0, 0, 0, 87.5, 'short_paid', 0, 3), """
                f"('{account}', 'INV-2', 'USD', '2026-01-01', 5, 5, 0, '{{}}', 0, 0, 0, 0, 0, 'paid', 0, 1)",
            )
        )
        upgrade(url, "0013")
        stored = "SELECT deductions::text FROM invoice_balances WHERE invoice_number = '{}'"
        per_type = ", ".join(
            f"CAST({breakdown.get(t, 'NULL')} AS numeric(20, 4)) AS {matching_sql._per_type(t)}"
            for t in matching_sql.DEDUCTION_LIKE
        )
        written = asyncio.run(
            run(url, f"SELECT {matching_sql._deductions_json(lambda c: f'v.{c}')} FROM (SELECT {per_type}) v")
        )
        assert written == '{"shortage_claim": "100.0000", "coop": "-12.5000"}'
        assert asyncio.run(run(url, stored.format("INV-1"))) == written
        assert asyncio.run(run(url, stored.format("INV-2"))) == "{}"

        downgrade(url, "0012")
        assert asyncio.run(run(url, stored.format("INV-1"))) == '{"coop": -12.5000, "shortage_claim": 100.0000}'


def test_journal_lines_become_entries_and_the_feed_is_unchanged(server_urls: ServerUrls) -> None:
    """0014 stores each pair of journal lines as one entry whose derived lines are exactly the stored ones (same
    positions, so an ERP's cursor still points where it did); it refuses a line outside a pair, changing nothing;
    0013 gets its lines back."""
    from acorn_api.reconciliation.models import JournalEntry
    from acorn_api.reconciliation.service import journal_lines

    account = "00000000-0000-4000-8000-000000000001"
    columns = (
        "account_id, seq, entry_date, category, deduction_type, amount, currency, ledger_entry_id, entry_type, "
        "invoice_number, payment_number, reference, store_id"
    )
    payment, reversal = "00000000-0000-7000-8000-00000000000a", "00000000-0000-7000-8000-00000000000b"
    lines = [
        (1, "cash", None, "100.0000", payment, "payment", "INV-1", "PAY-1", "r1"),
        (2, "receivable", None, "-100.0000", payment, "payment", "INV-1", "PAY-1", "r1"),
        (3, "recovery_income", "shortage_claim", "-30.0000", reversal, "shortage_reversal", "INV-1", None, None),
        (4, "receivable", None, "30.0000", reversal, "shortage_reversal", "INV-1", None, None),
    ]

    def values(seq: int, category: str, deduction: str | None, amount: str, entry: str, *rest: str | None) -> str:
        quoted = ", ".join("NULL" if v is None else f"'{v}'" for v in (category, deduction, amount))
        refs = ", ".join("NULL" if v is None else f"'{v}'" for v in rest)
        return f"('{account}', {seq}, '2026-03-01', {quoted}, 'USD', '{entry}', {refs}, NULL)"

    async def rows(url: str, statement: str) -> list[dict[str, object]]:
        engine = create_async_engine(to_async_database_url(url))
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            found = [dict(r._mapping) for r in result] if result.returns_rows else []
        await engine.dispose()
        return found

    stored_lines = f"SELECT {columns} FROM journal_lines ORDER BY seq"
    with fresh_database(server_urls.admin_database_url, migrate=False) as url:
        upgrade(url, "0013")
        asyncio.run(rows(url, f"INSERT INTO accounts (id, name) VALUES ('{account}', 'a')"))
        stored = ", ".join(values(*line) for line in lines)
        asyncio.run(rows(url, f"INSERT INTO journal_lines ({columns}) VALUES {stored}"))
        before = asyncio.run(rows(url, stored_lines))

        upgrade(url, "0014")
        entries = asyncio.run(rows(url, "SELECT * FROM journal_entries ORDER BY seq"))
        assert [(e["seq"], e["entry_type"], str(e["amount"])) for e in entries] == [
            (1, "payment", "-100.0000"),
            (3, "shortage_reversal", "30.0000"),
        ]
        derived = [
            line.model_dump(include=set(columns.split(", ")) - {"account_id"})
            for entry in entries
            for line in journal_lines(JournalEntry(**entry))
        ]
        assert derived == [{k: v for k, v in line.items() if k != "account_id"} for line in before]

        downgrade(url, "0013")
        assert asyncio.run(rows(url, stored_lines)) == before

        # a line without its pair: the upgrade refuses and leaves the lines as they were
        orphan = ("cash", None, "7.0000", "00000000-0000-7000-8000-00000000000c", "payment", "INV-2", "PAY-2", None)
        asyncio.run(rows(url, f"INSERT INTO journal_lines ({columns}) VALUES {values(5, *orphan)}"))
        with pytest.raises(RuntimeError, match="1 journal lines are not in a"):
            upgrade(url, "0014")
        assert len(asyncio.run(rows(url, stored_lines))) == 5
