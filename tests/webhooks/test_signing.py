"""``acorn_api.webhooks.verify``: the receiver's check of ``Acorn-Signature``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from acorn_api.webhooks import verify
from acorn_api.webhooks.signing import new_secret, sign

BODY = b'{"id":"e1","type":"quote.approved","data":{}}'


def test_a_signature_made_the_documented_way_verifies() -> None:
    secret = new_secret()
    mac = hmac.new(secret.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert verify(BODY, f"t=1700000000,v1={mac}", secret, now=1700000100)
    assert sign(BODY, [secret], timestamp=1700000000) == f"t=1700000000,v1={mac}"


def test_old_or_future_signatures_are_refused_beyond_the_tolerance() -> None:
    secret = new_secret()
    header = sign(BODY, [secret], timestamp=1700000000)
    assert verify(BODY, header, secret, tolerance=300, now=1700000300)
    assert not verify(BODY, header, secret, tolerance=300, now=1700000301)
    assert not verify(BODY, header, secret, tolerance=300, now=1699999699)


def test_any_of_several_v1_values_may_match() -> None:
    old, new = new_secret(), new_secret()
    header = sign(BODY, [new, old], timestamp=1700000000)
    assert verify(BODY, header, old, now=1700000000) and verify(BODY, header, new, now=1700000000)
    assert not verify(BODY, header, new_secret(), now=1700000000)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1700000000,t=1700000000,v1=00", "t=-5,v1=00"],
)
def test_malformed_headers_are_false_not_errors(header: str) -> None:
    assert verify(BODY, header, new_secret(), now=1700000000) is False
