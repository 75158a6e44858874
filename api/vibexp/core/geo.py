"""Where a client address is registered: its country (ISO 3166-1 alpha-2), from data shipped inside a package.

The data is the five Regional Internet Registries' delegation statistics (AFRINIC, APNIC, ARIN, LACNIC, RIPE NCC),
embedded in the ``iptocc`` wheel (no file, no download at run time): the country a block is *registered* to, not
where it is used (README.md "Where keys are used" credits the data). Private, loopback, link-local, shared (CGNAT),
documentation and other non-global addresses have no country, nor has anything that is not an address.

Never on the request path: the usage recorder's flush looks up each event's address (``vibexp.core.usage.recorder``)
and the ``new_country`` detector does the same for the batch it is handed; a flush sees the same few addresses over
and over, so the answer per address is kept (LRU), and a cached call costs well under a microsecond.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from iptocc import country_code

__all__ = ["COUNTRY_LENGTH", "country_of"]

#: ISO 3166-1 alpha-2: the length of every stored country column.
COUNTRY_LENGTH = 2


@lru_cache(maxsize=16384)
def country_of(client_ip: str | None) -> str | None:
    """The registered country of an address (an IPv4-mapped IPv6 address counts as its IPv4), or None: not an
    address, not a globally routed one, or in no registry's delegations."""
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    country = country_code(str(address))  # ~0.2 µs; None for private and loopback blocks too
    if country is None or not address.is_global:
        return None
    if len(country) != COUNTRY_LENGTH or not country.isascii() or not country.isalpha():
        return None
    return country.upper()
