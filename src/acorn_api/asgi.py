"""ASGI entry point for uvicorn: ``acorn_api.asgi:app``."""

from acorn_api.main import create_app

app = create_app()
