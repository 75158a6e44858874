"""The client's address: the socket peer, or what ``X-Forwarded-For`` says when the peer is a trusted proxy.

Exactly one layer decides it (DESIGN "Production install"): this resolver, called once per request by the
outermost ASGI layer (``vibexp.api.middleware.client_address``). The server's own proxy handling is off
(``vibexp serve`` runs uvicorn with ``proxy_headers=False``), so the peer is the transport's.

``VIBEXP_TRUSTED_PROXIES`` (CIDRs, empty by default) names the proxies whose ``X-Forwarded-For`` counts. The
header is read right to left: each hop a trusted proxy appended is skipped, and the first address that is not a
trusted proxy is the client (the address the outermost trusted proxy saw). A peer that is not trusted is the
client whatever the header says, so a forged ``X-Forwarded-For`` from the internet (or from loopback, when
loopback is not a trusted proxy) changes nothing.

The result is always an IP literal in its normal form (IPv4-mapped IPv6 as IPv4, no zone id) or ``None`` (no
peer: a Unix socket). A hop that is not one (garbage, an overlong value, a host name) ends the walk: the client is
then the nearest address known for certain, the last trusted hop before it, or the peer. That is the address
allow-lists check, the throttles count, the usage log records and the audit trail names.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from vibexp.core.cidrs import Networks, compile_networks

__all__ = ["MAX_ADDRESS_LENGTH", "ClientAddressResolver", "address_literal"]

#: No IP literal is longer (an IPv6 address with an embedded IPv4 one is at most 45 characters).
MAX_ADDRESS_LENGTH = 45
#: ``X-Forwarded-For`` hops read at most (a proxy chain is short; the header may be long).
MAX_HOPS = 32

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str | None) -> IPAddress | None:
    if not text or len(text) > MAX_ADDRESS_LENGTH or "%" in text:  # a zone id means nothing to another host
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)
def address_literal(text: str | None) -> str | None:
    """``text`` as an IP literal in its normal form, or ``None`` if it is not one.

    Cached (bounded): every request asks it for its socket peer, and a server sees the same few peers (its proxies,
    its regular clients) again and again, so parsing is paid once per peer, not once per request.
    """
    address = _parse(text)
    return None if address is None else str(address)


class ClientAddressResolver:
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted: Networks = compile_networks(trusted_proxies)

    @property
    def trusts_proxies(self) -> bool:
        return bool(self._trusted)

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address.version == network.version and address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client address for a request from ``peer`` carrying this ``X-Forwarded-For`` (or none)."""
        if not forwarded_for or not self._trusted:
            return address_literal(peer)
        nearest = _parse(peer)
        if nearest is None or not self._is_trusted(nearest):
            return None if nearest is None else str(nearest)
        hops = forwarded_for.split(",")[-MAX_HOPS:]
        for hop in reversed(hops):
            if not hop.strip():
                continue
            address = _parse(hop)
            if address is None:
                break  # garbage from here on: the last address a trusted hop vouched for is what we know
            nearest = address
            if not self._is_trusted(address):
                break
        return str(nearest)
