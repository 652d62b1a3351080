"""Run alembic from code (the CLI, `acorn-api dev`, tests) with the app's settings."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from acorn_api.settings import to_async_database_url


def project_root() -> Path:
    """The folder holding ``alembic.ini`` and ``migrations/``: the checkout, or the image's /app."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "migrations" / "env.py").exists():
            return candidate
    raise RuntimeError("cannot find the migrations folder; run from the project folder")


def alembic_config(database_url: str) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.set_main_option("sqlalchemy.url", to_async_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
