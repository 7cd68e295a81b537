"""Completion callbacks: when a failed delivery is tried again, which addresses a callback may
reach, and how its body is signed. Pure: the sender does the I/O.

A callback is an HTTP POST of a finished job to a URL its owner named. The body is signed with
HMAC-SHA256 under the team's secret (``X-Stoker-Signature: sha256=<hex>``), so the receiver
knows it came from Stoker and was not changed on the way; its ``sent_at`` lets the receiver
refuse old replays.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

#: The header that carries the signature, and its scheme.
SIGNATURE_HEADER = "X-Stoker-Signature"
SIGNATURE_SCHEME = "sha256="

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    """How callbacks are delivered.

    ``max_attempts`` deliveries at most; after the n-th failure the next try waits
    ``backoff_s * 2**(n-1)``, at most ``max_backoff_s``. ``allowed_networks``: private,
    loopback and other non-public networks that callbacks may reach all the same (by default
    none: a callback URL cannot be used to make the server call into its own network).
    """

    max_attempts: int = 8
    backoff_s: float = 2.0
    max_backoff_s: float = 600.0
    allowed_networks: tuple[IPNetwork, ...] = ()


def retry_delay_s(failures: int, policy: CallbackPolicy) -> float | None:
    """Seconds to wait after the ``failures``-th failed delivery, or None to give up."""
    if failures >= policy.max_attempts:
        return None
    return float(min(policy.backoff_s * 2 ** max(failures - 1, 0), policy.max_backoff_s))


def address_refusal(address: IPAddress, policy: CallbackPolicy) -> str | None:
    """Why a callback may not be sent to ``address`` (None: it may).

    Only global unicast addresses are open to every callback; loopback, private, link-local
    (cloud metadata services live there), shared, reserved and multicast ones need a network of
    ``allowed_networks`` that holds them."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in policy.allowed_networks):
        return None
    if address.is_multicast or address.is_unspecified:
        return f"{address} is not a host address"
    if not address.is_global:
        kind = ("a loopback" if address.is_loopback else
                "a link-local" if address.is_link_local else "a private or reserved")
        return (f"{address} is {kind} address; callbacks reach only public addresses unless "
                "the server's callbacks.allowed_networks holds it")
    return None


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Stoker-Signature`` value of ``body`` under ``secret``."""
    return SIGNATURE_SCHEME + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_matches(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (for receivers;
    compared in constant time)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)
