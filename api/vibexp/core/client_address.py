"""The client's address: the socket peer, or what ``X-Forwarded-For`` says when the peer is a trusted proxy.

``VIBEXP_TRUSTED_PROXIES`` (CIDRs, empty by default) names the proxies whose ``X-Forwarded-For`` counts. The
header is read right to left: each hop a trusted proxy appended is skipped, and the first address that is not a
trusted proxy is the client (the address the outermost trusted proxy saw). A peer that is not trusted is the
client whatever the header says, so a forged ``X-Forwarded-For`` from the internet changes nothing. This is the
address allow-lists check, the usage log records and the audit trail names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from vibexp.core.keys.cidrs import Networks, compile_networks

__all__ = ["ClientAddressResolver"]


class ClientAddressResolver:
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted: Networks = compile_networks(trusted_proxies)

    @property
    def trusts_proxies(self) -> bool:
        return bool(self._trusted)

    def _is_trusted(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client address for a request from ``peer`` carrying this ``X-Forwarded-For`` (or none)."""
        if not self._trusted or not forwarded_for or peer is None or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            if not self._is_trusted(hop):
                return _valid_or_none(hop)
        return _valid_or_none(hops[0]) or peer  # every hop was a trusted proxy: the first one is the client


def _valid_or_none(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None  # a garbled hop from a trusted proxy: no address, so an allow-list refuses the request
