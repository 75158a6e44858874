"""Where a client address is registered: its country (ISO 3166-1 alpha-2), from data shipped inside a package.

The data is the five Regional Internet Registries' delegation statistics (AFRINIC, APNIC, ARIN, LACNIC, RIPE NCC),
embedded in the ``iptocc`` wheel (no file, no download at run time): the country a block is *registered* to, not
where it is used (README.md "Where keys are used" credits the data). Private, loopback, link-local, shared (CGNAT),
documentation and other non-global addresses have no country, nor has anything that is not an address.

Never on the request path: the usage recorder's flush looks up each event's address (``vibexp.core.usage.recorder``)
and the ``new_country`` detector does the same for the batch it is handed. A lookup is one call into the package's
compiled table (~0.2 µs, no parsing); a flush sees the same few addresses over and over, so the answer per address
is kept as well (LRU, ~0.15 µs a hit).

``country_name`` gives a code the English short name people know ("Germany", "United Kingdom"), from the ``iso3166``
package's ISO 3166-1 table, with the handful of long formal names shortened (``SHORT_NAMES``).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from iptocc import country_code
from iso3166 import countries_by_alpha2

__all__ = ["COUNTRY_LENGTH", "SHORT_NAMES", "country_name", "country_of"]

#: ISO 3166-1 alpha-2: the length of every stored country column.
COUNTRY_LENGTH = 2


@lru_cache(maxsize=16384)
def country_of(client_ip: str | None) -> str | None:
    """The registered country of an address (an IPv4-mapped IPv6 address counts as its IPv4), or None: not an
    address, not a globally routed one, or in no registry's delegations."""
    if not client_ip:
        return None
    # The registries delegate no private, loopback, link-local, shared (CGNAT), documentation or other special-purpose
    # block, so the data answers None for those (tests/security/test_new_country.py checks one address of each kind)
    # and for anything that is not an address: one call (~0.2 µs). Only what may be an IPv4-mapped IPv6 address is
    # parsed, to look up its IPv4 address.
    country = country_code(client_ip)
    if country is None:
        if ":" in client_ip and "ffff" in client_ip.lower():  # IPv4-mapped? (::ffff:192.0.2.1, ::ffff:c000:201)
            mapped = _parse(client_ip)
            if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
                return country_of(str(mapped.ipv4_mapped))
        return None
    if len(country) != COUNTRY_LENGTH or not country.isascii() or not country.isalpha():
        return None
    return country.upper()


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


#: The common English names of the countries whose ISO 3166-1 name is a long formal one.
SHORT_NAMES = {
    "BO": "Bolivia",
    "FM": "Micronesia",
    "GB": "United Kingdom",
    "IR": "Iran",
    "KP": "North Korea",
    "KR": "South Korea",
    "LA": "Laos",
    "MD": "Moldova",
    "PS": "Palestine",
    "RU": "Russia",
    "SY": "Syria",
    "TW": "Taiwan",
    "TZ": "Tanzania",
    "US": "United States",
    "VE": "Venezuela",
    "VN": "Vietnam",
}


def country_name(code: str | None) -> str | None:
    """The English name of an ISO 3166-1 alpha-2 code (any case), or None for no code or one the table lacks
    (a registry may use ``EU`` or ``AP``, which are not countries)."""
    if not code:
        return None
    code = code.upper()
    if code in SHORT_NAMES:
        return SHORT_NAMES[code]
    country = countries_by_alpha2.get(code)
    return country.apolitical_name if country is not None else None
