"""The callback policy: backoff, the addresses a callback may reach, signatures."""

from __future__ import annotations

import ipaddress

import pytest

from stoker.core.callbacks import (
    CallbackPolicy,
    address_refusal,
    retry_delay_s,
    signature,
    signature_matches,
)


def test_retries_back_off_doubling_up_to_the_cap_then_give_up() -> None:
    policy = CallbackPolicy(max_attempts=6, backoff_s=2.0, max_backoff_s=10.0)
    assert [retry_delay_s(n, policy) for n in range(1, 7)] == [2.0, 4.0, 8.0, 10.0, 10.0, None]


def test_one_attempt_means_no_retry() -> None:
    assert retry_delay_s(1, CallbackPolicy(max_attempts=1)) is None


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "::1", "fe80::1", "fd00::5", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1",
])
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address), CallbackPolicy())
    assert refusal is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"])
def test_public_addresses_are_reachable(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), CallbackPolicy()) is None


def test_an_allowed_network_opens_just_that_network() -> None:
    policy = CallbackPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), policy) is None
    assert address_refusal(ipaddress.ip_address("::ffff:127.0.0.1"), policy) is None
    assert address_refusal(ipaddress.ip_address("10.0.0.1"), policy) is not None


def test_a_loopback_refusal_says_how_to_allow_it() -> None:
    refusal = address_refusal(ipaddress.ip_address("127.0.0.1"), CallbackPolicy())
    assert refusal is not None
    assert "loopback" in refusal
    assert "allowed_networks" in refusal


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2.
    assert signature(b"Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    signed = signature(b"team-secret", b'{"job":1}')
    assert signature_matches(b"team-secret", b'{"job":1}', signed)
    assert not signature_matches(b"team-secret", b'{"job":2}', signed)
    assert not signature_matches(b"other-secret", b'{"job":1}', signed)
    assert not signature_matches(b"team-secret", b'{"job":1}', None)
