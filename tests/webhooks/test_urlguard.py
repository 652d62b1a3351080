"""SSRF: webhook URLs are refused for private, link-local, metadata, unique-local and (outside development)
loopback addresses, whatever the spelling, after DNS resolution and again when connecting."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from acorn_api.core import netguard
from acorn_api.settings import Settings
from acorn_api.webhooks import jobs, urlguard
from acorn_api.webhooks.urlguard import Policy, UnsafeUrl
from tests.conftest import Tenant
from tests.webhooks.conftest import Receiver, emit, make_endpoint

PRODUCTION = Policy(allow_loopback=False, allow_http=False)
DEVELOPMENT = Policy(allow_loopback=True, allow_http=True)

ALWAYS_REFUSED = [
    "https://10.0.0.1/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # shared (carrier-grade NAT)
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://169.254.10.10/hook",  # link-local
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd00:ec2::254]/hook",  # AWS metadata over IPv6
    "https://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private
    "https://[::ffff:169.254.169.254]/hook",
    "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "https://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    "https://[64:ff9b::5db8:d70e]/hook",  # NAT64, not globally routable whatever it carries
    "https://[2001:0:4136:e378:8000:63bf:a247:28f1]/hook",  # Teredo, likewise
    "https://metadata.google.internal/hook",
    "https://0.0.0.0/hook",
    "https://[::]/hook",
    "https://224.0.0.1/hook",
    "https://167772161/hook",  # 10.0.0.1 as a decimal number
    "https://0x0a000001/hook",  # ... in hex
    "https://012.0.0.1/hook",  # ... with an octal first part
    "https://10.1/hook",  # ... short form
    "https://2852039166/hook",  # 169.254.169.254 as a decimal number
]
LOOPBACK = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
]
LOOPBACK_TRICKS = [
    "https://2130706433/hook",
    "https://0177.0.0.1/hook",
    "https://0x7f.0.0.1/hook",
    "https://127.1/hook",
]
MALFORMED = [
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "https://user:pw@example.com/hook",
    "https:///hook",
    "https://exa mple.com/hook",
    "https://example.com/hook#frag",
]


@pytest.mark.parametrize("url", ALWAYS_REFUSED + LOOPBACK + LOOPBACK_TRICKS + MALFORMED)
async def test_refused_in_production(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await urlguard.check_url_resolved(url, PRODUCTION)


@pytest.mark.parametrize("url", ALWAYS_REFUSED + LOOPBACK_TRICKS + MALFORMED)
async def test_refused_even_in_development(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await urlguard.check_url_resolved(url, DEVELOPMENT)


@pytest.mark.parametrize("url", LOOPBACK)
async def test_loopback_is_allowed_only_in_development_and_test(url: str) -> None:
    await urlguard.check_url_resolved(url, DEVELOPMENT)


def test_the_policy_follows_the_environment() -> None:
    for environment, allowed in (("development", True), ("test", True), ("staging", False)):
        policy = urlguard.policy_for(Settings(environment=environment))  # type: ignore[arg-type]
        assert (policy.allow_loopback, policy.allow_http) == (allowed, allowed), environment


async def test_plain_http_is_refused_outside_development() -> None:
    with pytest.raises(UnsafeUrl, match="https"):
        urlguard.check_url("http://93.184.215.14/hook", PRODUCTION)
    urlguard.check_url("https://93.184.215.14/hook", PRODUCTION)


async def test_a_public_address_passes() -> None:
    await urlguard.check_url_resolved("https://93.184.215.14:8443/hook", PRODUCTION)


def _dns(answers: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


async def test_names_resolving_to_forbidden_addresses_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        netguard,
        "resolve",
        _dns(
            {
                "internal.example.com": ["10.1.2.3"],
                "mixed.example.com": ["93.184.215.14", "192.168.0.7"],  # one bad answer refuses the name
                "metadata.example.com": ["169.254.169.254"],
                "v6.example.com": ["fd12::1"],
                "fine.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
            }
        ),
    )
    for host in ("internal", "mixed", "metadata", "v6"):
        with pytest.raises(UnsafeUrl):
            await urlguard.check_url_resolved(f"https://{host}.example.com/hook", DEVELOPMENT)
    await urlguard.check_url_resolved("https://fine.example.com/hook", PRODUCTION)


async def test_localhost_resolves_to_loopback_and_is_refused_in_production() -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        await urlguard.check_url_resolved("https://localhost/hook", PRODUCTION)


async def test_unresolvable_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(netguard, "resolve", fail)
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await urlguard.check_url_resolved("https://nowhere.example.com/hook", PRODUCTION)


async def test_the_guarded_client_refuses_at_connect_time() -> None:
    """Without any earlier check, the client itself will not connect to a forbidden address."""
    async with urlguard.guarded_client(PRODUCTION, timeout=2) as client:
        for url in ("http://127.0.0.1:9/", "http://169.254.169.254/", "http://[::1]:9/", "http://localhost:9/"):
            with pytest.raises(UnsafeUrl):
                await client.post(url, content=b"{}")


# --- through the API and the delivery job ------------------------------------------------------------------


@pytest.mark.committing
@pytest.mark.parametrize(
    "url", ["https://10.0.0.1/x", "https://169.254.169.254/latest", "https://[fe80::1]/x", "https://2852039166/"]
)
async def test_the_api_refuses_forbidden_urls_with_a_422_naming_the_field(
    committing_client: httpx.AsyncClient, tenant: Tenant, url: str
) -> None:
    r = await committing_client.post("/v1/webhook-endpoints", json={"url": url}, headers=tenant.headers())
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "url"]


@pytest.mark.committing
async def test_dns_rebinding_after_registration_is_caught_at_delivery(
    committing_client: httpx.AsyncClient,
    tenant: Tenant,
    receiver: Receiver,
    ctx: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name resolved to the (allowed, in test) receiver when registered; at delivery it points at the
    metadata service: the attempt is refused before any byte is sent, and recorded as such."""
    port = int(receiver.url.split(":")[2].split("/")[0])
    answers = {"hooks.example.com": ["127.0.0.1"]}
    monkeypatch.setattr(netguard, "resolve", _dns(answers))
    endpoint = await make_endpoint(committing_client, tenant, f"http://hooks.example.com:{port}/hooks")
    answers["hooks.example.com"] = ["169.254.169.254"]
    event_id = await emit(ctx["sessionmaker"], tenant.id)

    await jobs.deliver_event(ctx, str(tenant.id), str(event_id))

    assert receiver.received == []
    r = await committing_client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=tenant.headers())
    [attempt] = r.json()["data"]
    assert attempt["outcome"] == "failed" and "metadata" in attempt["error"]
    assert attempt["next_attempt_at"] is not None  # retried later: the name may point somewhere sane again
    answers["hooks.example.com"] = ["127.0.0.1"]
    assert uuid.UUID(attempt["event_id"]) == event_id
