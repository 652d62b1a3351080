"""No control characters in text input: one rule, checked in one place for every route.

PostgreSQL refuses NUL in ``text`` (so a ``?q=%00`` used to answer 500), and the other C0 control
characters have no business in names, codes or filters either. :class:`ControlCharacterMiddleware`
refuses them with a 422 problem naming the field, before any route runs:

* query parameters and path segments: every C0 character (U+0000–U+001F);
* JSON bodies and ``application/x-www-form-urlencoded`` forms: every C0 character except tab, line feed
  and carriage return (free-text fields such as a reason may span lines), in keys and values alike;
* CSV files go through :func:`control_character_problem` in the CSV reader, with the same rule.

JSON cannot carry a raw control character inside a string, only the escape ``\\u00XX``; bodies without one
are passed through untouched, so the common case costs one byte search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acorn_api.core.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE

SINGLE_LINE = re.compile(r"[\x00-\x1f]")
MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_JSON_CONTROL_ESCAPE = re.compile(rb"\\u00[01][0-9a-f]", re.IGNORECASE)
_ENCODED_CONTROL = re.compile(rb"%[01][0-9a-f]", re.IGNORECASE)
_RAW_CONTROL = re.compile(rb"[\x00-\x1f]")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Loc = list[str | int]


def control_character_problem(value: str, *, multi_line: bool = True) -> str | None:
    """Why ``value`` is not acceptable text (it holds a control character), or None."""
    found = (MULTI_LINE if multi_line else SINGLE_LINE).search(value)
    if found is None:
        return None
    allowed = "; tab and line breaks are allowed" if multi_line else ""
    return f"must not contain control characters (found U+{ord(found.group()):04X}){allowed}"


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        if problem := control_character_problem(value):
            yield loc, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            if problem := control_character_problem(str(key), multi_line=False):
                yield [*loc, str(key)], f"the field name {problem}"
            yield from _walk(item, [*loc, str(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, [*loc, index])


def _query_problems(query_string: bytes) -> list[tuple[Loc, str]]:
    if not (_ENCODED_CONTROL.search(query_string) or _RAW_CONTROL.search(query_string)):
        return []
    found: list[tuple[Loc, str]] = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        for text, what in ((name, "the parameter name "), (value, "")):
            if problem := control_character_problem(text, multi_line=False):
                found.append((["query", name], what + problem))
                break
    return found or [(["query"], "must not contain control characters")]


_PATH_PARAMETER = re.compile(r"\\\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\\\}")


def _path_templates(app: Any) -> list[re.Pattern[str]]:
    """Every documented path as a regex with a named group per parameter (cached on the app)."""
    state = getattr(app, "state", None)
    cached: list[re.Pattern[str]] | None = getattr(state, "control_character_paths", None)
    if cached is None:
        cached = [
            re.compile("^" + _PATH_PARAMETER.sub(r"(?P<\1>[^/]+)", re.escape(path)) + "$")
            for path in app.openapi().get("paths", {})
        ]
        if state is not None:
            state.control_character_paths = cached
    return cached


def _path_problems(scope: Scope) -> list[tuple[Loc, str]]:
    path: str = scope.get("path", "")
    if not SINGLE_LINE.search(path):
        return []
    app = scope.get("app")
    for template in _path_templates(app) if hasattr(app, "openapi") else []:
        if (match := template.match(path)) is None:
            continue
        named: list[tuple[Loc, str]] = [
            (["path", name], problem)
            for name, value in match.groupdict().items()
            if (problem := control_character_problem(value, multi_line=False))
        ]
        if named:
            return named
    return [(["path"], control_character_problem(path, multi_line=False) or "")]


def _body_problems(content_type: str, body: bytes) -> list[tuple[Loc, str]]:
    if content_type == "application/json" or content_type.endswith("+json"):
        if not _JSON_CONTROL_ESCAPE.search(body):
            return []
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return []  # the route answers the parse error
        return list(_walk(parsed, ["body"]))
    if content_type == "application/x-www-form-urlencoded":
        if not (_ENCODED_CONTROL.search(body) or _RAW_CONTROL.search(body)):
            return []
        fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        return [
            (["body", name], problem) for name, value in fields if (problem := control_character_problem(name + value))
        ]
    return []


class ControlCharacterMiddleware:
    """Refuses control characters in the query, the path and JSON or urlencoded bodies with a 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = _query_problems(scope.get("query_string", b"")) + _path_problems(scope)
        if problems:
            await _reject(scope, send, problems)
            return
        content_type = _content_type(scope)
        if scope["method"] not in BODY_METHODS or not _inspected(content_type):
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        problems = _body_problems(content_type, body)
        if problems:
            await _reject(scope, send, problems)
            return
        await self.app(scope, _replay(body, disconnected, receive), send)


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1")).split(";", 1)[0].strip().lower()
    return ""


def _inspected(content_type: str) -> bool:
    return content_type in ("application/json", "application/x-www-form-urlencoded") or content_type.endswith("+json")


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (the size limit outside this middleware bounds it), and whether the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, disconnected: bool, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnected:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reject(scope: Scope, send: Send, problems: list[tuple[Loc, str]]) -> None:
    state: dict[str, Any] = scope.setdefault("state", {})
    fields = ", ".join(".".join(str(p) for p in loc) for loc, _ in problems[:5])
    body = orjson.dumps(
        {
            "type": PROBLEM_BASE + "validation-error",
            "title": "Unprocessable content",
            "status": 422,
            "detail": f"The request is not valid: {fields}",
            "instance": scope.get("path"),
            "request_id": state.get("request_id"),
            "errors": [{"loc": loc, "msg": msg, "type": "control_character"} for loc, msg in problems],
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
