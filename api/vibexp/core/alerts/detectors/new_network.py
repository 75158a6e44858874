"""**new_network**: the IPv4 /24 or IPv6 /48 of each event's client address, per key (table ``key_networks``) or OAuth
grant (``grant_networks``). A network the credential has not used in ``new_network_days`` days is an alert; its first
network ever is not (nor is an event with no parseable client address). The SELECT, the upsert and the rule are
:class:`~.new_place.NewPlace`'s."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.detectors.base import DetectorLimits
from vibexp.core.alerts.detectors.new_place import NewPlace
from vibexp.core.alerts.models import AlertKind, GrantNetwork, KeyNetwork

__all__ = ["NewNetwork", "network_of"]


@lru_cache(maxsize=8192)  # a flush sees the same few addresses over and over: parse each once
def network_of(client_ip: str | None) -> str | None:
    """The IPv4 /24 or IPv6 /48 of an address (an IPv4-mapped IPv6 address counts as IPv4); None if unparseable."""
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class NewNetwork(NewPlace):
    kind = AlertKind.new_network
    models = {CredentialKind.api_key: KeyNetwork, CredentialKind.grant: GrantNetwork}
    column = "network"

    @staticmethod
    def place_of(client_ip: str | None) -> str | None:
        return network_of(client_ip)

    def lookback_days(self, limits: DetectorLimits) -> int:
        return limits.new_network_days
