"""OWASP API10 (unsafe consumption of APIs): the Amazon connector against a hostile SP-API.

Covered elsewhere, against the simulator or a mock: throttling, 5xx, timeouts and truncated JSON
(tests/amazon/test_client.py, test_client_against_simulator.py), oversized bodies while streaming, gzip bombs,
report URLs off Amazon's hosts, internal addresses at DNS and connect time (tests/amazon/test_endpoint_security.py).

Here, over real sockets: a server that answers *slowly* — a byte at a time, each within the read timeout, so
only a deadline on the whole answer stops it —, one that *redirects* (to cloud metadata), and bodies that are
*malformed* in ways a parser could trip on (not JSON, HTML, the wrong shape, a huge number, deep nesting).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from acorn_api.amazon.client import ConnectionCredentials, DownloadLimits, RetryPolicy, SpApiClient
from acorn_api.amazon.errors import SpApiError, SpApiMalformedResponse, SpApiTimeout
from acorn_api.amazon.lwa import LwaCredentials, LwaToken, LwaTokenCache
from acorn_api.amazon.ratelimit import RedisTokenBucket
from acorn_api.amazon.regions import Region
from acorn_api.amazon.wire import ReportDocument
from acorn_api.core.netguard import guarded_client, guarded_transport
from acorn_api.settings import Settings

Respond = Callable[[asyncio.StreamWriter], Any]


class _Tokens(LwaTokenCache):
    def __init__(self) -> None:
        async def exchange(url: str, creds: LwaCredentials) -> LwaToken:
            return LwaToken("Atza|token", 3600)

        super().__init__(exchanger=exchange)


async def _serve(respond: Respond) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            await respond(writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
async def spapi(settings: Settings) -> AsyncIterator[Callable[[str, float], SpApiClient]]:
    redis = Redis.from_url(settings.redis_url or "")
    http = guarded_client(guarded_transport(schemes=("http",), allow_loopback=True, allowed_hosts=["127.0.0.1"]))
    limiters: list[RedisTokenBucket] = []

    def make(base_url: str, timeout: float) -> SpApiClient:
        creds = ConnectionCredentials("k", Region.NA, "id", "secret", "token", endpoint_override=base_url)
        limiter = RedisTokenBucket(redis, base_url, key_prefix=f"{settings.redis_key_prefix}:unsafe:{time.time_ns()}")
        limiters.append(limiter)
        retry = RetryPolicy(max_attempts=1, base_delay=0.01, timeout=timeout, deadline=3 * timeout)
        limits = DownloadLimits(max_seconds=5 * timeout)
        return SpApiClient(http, redis, creds, _Tokens(), retry, rate_limiter=limiter, download_limits=limits)

    yield make
    await http.aclose()
    await redis.aclose()


async def test_a_slow_drip_answer_is_cut_off_at_the_deadline(spapi: Callable[[str, float], SpApiClient]) -> None:
    async def drip(writer: asyncio.StreamWriter) -> None:
        writer.write(_head())
        writer.write(b'{"payload": {"transactionStatus": {"transactionId": "t", "transactionStatus": "Processing"')
        for _ in range(600):  # five minutes, a byte every half second: never idle long enough for a read timeout
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.5)

    server, url = await _serve(drip)
    async with server:
        started = time.monotonic()
        with pytest.raises(SpApiTimeout):
            await spapi(url, 2.0).get_transaction("t")
        assert time.monotonic() - started < 6 + 2  # the deadline (3 x the 2 s read timeout), and some slack


async def test_a_slow_drip_report_document_is_cut_off_too(spapi: Callable[[str, float], SpApiClient]) -> None:
    async def drip(writer: asyncio.StreamWriter) -> None:
        writer.write(_head())
        for _ in range(600):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.5)

    server, url = await _serve(drip)
    async with server:
        document = ReportDocument.model_validate({"reportDocumentId": "d", "url": f"{url}/doc"})
        started = time.monotonic()
        with pytest.raises(SpApiTimeout):
            await spapi(url, 2.0).download_report_document(document)
        assert time.monotonic() - started < 10 + 2


async def test_a_redirect_is_never_followed(spapi: Callable[[str, float], SpApiClient]) -> None:
    """Neither to another (allowed) host, nor to cloud metadata; nor is a 302 taken for an empty document."""
    followed: list[bool] = []

    async def target(writer: asyncio.StreamWriter) -> None:
        followed.append(True)
        writer.write(_head(Content_Length="2") + b"{}")

    second, elsewhere = await _serve(target)
    async with second:
        for location in (f"{elsewhere}/x", "http://169.254.169.254/latest/meta-data/"):

            async def redirect(writer: asyncio.StreamWriter, location: str = location) -> None:
                writer.write(_head("302 Found", Location=location, Content_Length="0"))

            first, url = await _serve(redirect)
            async with first:
                with pytest.raises(SpApiError):
                    await spapi(url, 2.0).get_transaction("t")
                document = ReportDocument.model_validate({"reportDocumentId": "d", "url": f"{url}/doc"})
                with pytest.raises(SpApiError):
                    await spapi(url, 2.0).download_report_document(document)
    assert not followed


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"null",
        b"[]",
        b'{"payload": []}',
        b'{"payload": {"transactionStatus": {"transactionId": ' + b"9" * 100_000 + b"}}}",
        b'{"payload": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"payload": {"transactionStatus": "\xff\xfe"}}',
        json.dumps({"payload": {"transactionStatus": {"transactionId": "t" * 1_000_000}}}).encode(),
    ],
    ids=["html", "empty", "null", "array", "wrong-shape", "huge-number", "deep", "bad-utf8", "huge-string"],
)
async def test_malformed_answers_are_a_clean_error(spapi: Callable[[str, float], SpApiClient], body: bytes) -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(Content_Length=str(len(body))) + body)

    server, url = await _serve(answer)
    async with server:
        with pytest.raises(SpApiMalformedResponse):
            await spapi(url, 2.0).get_transaction("t")
