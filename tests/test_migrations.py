"""Migrations build the schema the models describe, and step down and up again cleanly."""

from __future__ import annotations

import asyncio

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
