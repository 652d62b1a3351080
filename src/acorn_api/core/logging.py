"""Structured logs (JSON in production) carrying the request id of the request being served."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

ACCESS_LOGGER = "acorn_api.access"
_access = logging.getLogger(ACCESS_LOGGER)
_access_json = False
_access_structured = structlog.get_logger(ACCESS_LOGGER)


def _orjson_dumps(event: object, **_: object) -> str:
    return orjson.dumps(event, default=repr).decode()


def log_access(**fields: Any) -> None:
    """One line per request. In JSON mode it is rendered here, straight to orjson (the same keys the
    structlog chain would write), because the chain costs more than the rest of a cheap request's logging."""
    if not _access.isEnabledFor(logging.INFO):
        return
    if not _access_json:
        _access_structured.info("request", **fields)
        return
    line = {
        **structlog.contextvars.get_contextvars(),
        "event": "request",
        **fields,
        "level": "info",
        "logger": ACCESS_LOGGER,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    _access.info(orjson.dumps(line, default=repr).decode())


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The access line arrives already rendered (see log_access): its handler writes the message as it is.
    global _access_json
    _access_json = json
    access_handler = logging.StreamHandler(sys.stderr)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    _access.handlers[:] = [access_handler] if json else []
    _access.propagate = not json
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
