"""The `acorn-api` command: dev, serve, worker, migrate, openapi, create-account, simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from acorn_api.settings import Settings

app = typer.Typer(
    help="ACORN API: the back office of Amazon Vendors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

DEV_DIR = Path(".acorn-dev")
OPENAPI_PATH = Path("openapi/openapi.json")


def _settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "0.0.0.0",  # noqa: S104 - a server binds
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the API with uvicorn (production entry point)."""
    import uvicorn

    uvicorn.run(
        "acorn_api.asgi:app",
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        access_log=False,
        log_config=None,
    )


@app.command()
def worker(
    check: Annotated[
        bool, typer.Option("--check", help="exit 0 if this host's worker is alive (its health key is fresh), else 1")
    ] = False,
) -> None:
    """Run an arq worker (sync jobs, imports, scheduled work) that reconnects after Redis or database outages."""
    from acorn_api import worker as worker_module

    settings = _settings()
    if check:
        healthy, info = asyncio.run(worker_module.check_health(settings))
        typer.echo(f"worker healthy: {info}" if healthy else f"worker not healthy: {info or 'no recent heartbeat'}")
        raise typer.Exit(0 if healthy else 1)
    worker_module.run(settings)


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply database migrations (alembic upgrade)."""
    from acorn_api.migrate import upgrade

    settings = _settings()
    if not settings.database_url:
        raise typer.BadParameter("set ACORN_DATABASE_URL")
    upgrade(settings.database_url, revision)


def render_openapi() -> bytes:
    from acorn_api.main import create_app

    schema = create_app(_settings()).openapi()
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="where to write the schema")] = OPENAPI_PATH,
    check: Annotated[bool, typer.Option(help="fail if the file differs instead of writing")] = False,
) -> None:
    """Write the OpenAPI contract generated from the app."""
    rendered = render_openapi()
    if check:
        if not output.exists() or output.read_bytes() != rendered:
            typer.echo(f"{output} is out of date: run `acorn-api openapi`", err=True)
            raise typer.Exit(1)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(rendered)
    typer.echo(f"wrote {output}")


async def _create_account(settings: Settings, name: str, issued_to: str | None = None) -> dict[str, str]:
    from acorn_api.accounts.service import create_account
    from acorn_api.core.db import make_engine, make_sessionmaker

    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session:
            created = await create_account(session, settings, name=name, issued_to=issued_to)
            await session.commit()
            return {"account_id": str(created.account.id), "api_key": created.secret}
    finally:
        await engine.dispose()


@app.command("create-account")
def create_account_command(
    name: Annotated[str, typer.Option(help="the account's display name")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object for scripts")] = False,
    issued_to: Annotated[
        str | None,
        typer.Option(help="the person the first admin key is issued to (default: 'first admin of <name>')"),
    ] = None,
) -> None:
    """Create an account and print its first admin API key (shown once)."""
    settings = _settings()
    if not settings.database_url:
        raise typer.BadParameter("set ACORN_DATABASE_URL")
    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("name must be 1-200 characters", param_hint="--name")
    if issued_to is not None and not issued_to.strip():
        raise typer.BadParameter("must name a person", param_hint="--issued-to")
    created = asyncio.run(_create_account(settings, name.strip(), issued_to.strip() if issued_to else None))
    if as_json:
        typer.echo(json.dumps(created))
    else:
        typer.echo(f"account {created['account_id']} created")
        typer.echo(f"admin API key (shown once, keep it safe): {created['api_key']}")


async def _reencrypt(settings: Settings) -> int:
    from acorn_api.amazon.jobs import reencrypt_connection_secrets
    from acorn_api.core.db import make_engine, make_sessionmaker

    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        return await reencrypt_connection_secrets({"settings": settings, "sessionmaker": make_sessionmaker(engine)})
    finally:
        await engine.dispose()


@app.command("reencrypt-secrets")
def reencrypt_secrets() -> None:
    """Key rotation: rewrite every stored connection secret under the first of ACORN_ENCRYPTION_KEYS."""
    settings = _settings()
    if not settings.database_url:
        raise typer.BadParameter("set ACORN_DATABASE_URL")
    count = asyncio.run(_reencrypt(settings))
    typer.echo(f"re-encrypted the secrets of {count} connection(s)")


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="API address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="where embedded servers keep their data")] = DEV_DIR,
) -> None:
    """Run everything locally: embedded PostgreSQL and Valkey (unless URLs are set), API and worker."""
    from acorn_api.devserver import run_dev

    run_dev(host=host, port=port, data_dir=data_dir)


@app.command()
def simulator(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8100,
    seed: Annotated[int, typer.Option(help="seed of the generated data")] = 1,
    purchase_orders: Annotated[int, typer.Option(help="how many purchase orders to generate")] = 500,
    client_id: Annotated[str, typer.Option(help="LWA client id the simulator accepts")] = "sim-client",
    client_secret: Annotated[str, typer.Option(help="LWA client secret the simulator accepts")] = "sim-secret",  # noqa: S107 - the simulator's well-known demo value
    refresh_token: Annotated[str, typer.Option(help="LWA refresh token the simulator accepts")] = "Atzr|sim-refresh",  # noqa: S107 - the simulator's well-known demo value
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of SP-API calls that fail (429, 5xx, timeouts, ...)")
    ] = 0.0,
) -> None:
    """Run the SP-API simulator that stands in for Amazon; prints its endpoint and LWA credentials."""
    from acorn_sim import FaultConfig, SimulatorConfig, run_simulator

    config = SimulatorConfig(
        seed=seed,
        purchase_orders=purchase_orders,
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        faults=FaultConfig.mixed(fault_rate),
    )
    run_simulator(host, port, config)


def main() -> None:  # pragma: no cover - console entry
    with contextlib.suppress(KeyboardInterrupt):
        app()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
