"""A key's IP allow-list (``allowed_cidrs``): parsing it strictly, and checking a client address against it.

Below every domain (the settings parse their trusted proxies with it too): it imports nothing of the core.

A CIDR must be a network address: ``10.0.0.1/8`` (host bits set) is refused rather than silently widened to
``10.0.0.0/8``, as are IPv6 zones (``fe80::1%eth0``: meaningless off the host that wrote them) and anything that
is not an address. A bare address is its own network (``/32``, ``/128``). An empty list means anywhere.

An IPv4-mapped IPv6 network (``::ffff:127.0.0.1/128``, any ``::ffff:0:0/96`` subnet) is the IPv4 network it maps
(``127.0.0.1/32``), stored and matched as such: client addresses are compared in their IPv4 form (a dual-stack
socket reports an IPv4 client as ``::ffff:a.b.c.d``), so a mapped network kept as IPv6 would never match.

The verifier compiles a key's list once, into ``Networks``, when it caches the key; the request path then checks
the client address (``ipaddress.ip_address`` once, and a containment test per network).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = ["CidrList", "Network", "Networks", "client_allowed", "compile_networks", "normalise", "uncovered"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: A compiled allow-list; empty allows every address.
Networks = tuple[Network, ...]
#: How many networks one key may list.
MAX_CIDRS = 64


#: The IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2).
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: Network) -> Network:
    """An IPv4-mapped IPv6 network as the IPv4 network it maps; any other network as it is."""
    mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
    if mapped is not None and network.prefixlen >= _MAPPED.prefixlen:
        return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED.prefixlen))
    return network


def _parse(text: str) -> Network:
    if "%" in text:
        raise ValueError(f"{text!r}: IPv6 zones (%...) are not allowed in a CIDR")
    try:
        return _unmapped(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError as exc:
        if "host bits set" in str(exc):
            suggestion = ipaddress.ip_network(text.strip(), strict=False)
            raise ValueError(f"{text!r} has host bits set: did you mean {suggestion}?") from None
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 CIDR (such as 203.0.113.0/24 or 2001:db8::/32)") from None


def normalise(cidrs: Sequence[str]) -> tuple[str, ...]:
    """Validate a request's ``allowed_cidrs`` (at most ``MAX_CIDRS``) and return them in canonical form; raises
    ``ValueError``."""
    if len(cidrs) > MAX_CIDRS:
        raise ValueError(f"At most {MAX_CIDRS} networks per key ({len(cidrs)} given)")
    seen: dict[Network, None] = {}
    for text in cidrs:
        network = _parse(text)
        if network in seen:
            raise ValueError(f"{network} is listed twice")
        seen[network] = None
    return tuple(str(network) for network in seen)


def _validated(cidrs: list[str]) -> list[str]:
    return list(normalise(cidrs))


#: A request's ``allowed_cidrs``: network addresses (IPv4 or IPv6), no duplicates; empty means anywhere.
CidrList = Annotated[
    list[Annotated[str, Field(max_length=64)]],
    Field(max_length=MAX_CIDRS, examples=[["203.0.113.0/24", "2001:db8::/32"]]),
    AfterValidator(_validated),
]


def compile_networks(cidrs: Iterable[str]) -> Networks:
    """A stored allow-list as networks (stored lists were validated on the way in; a mapped network stored before
    they were normalised is read as IPv4 too)."""
    return tuple(_unmapped(ipaddress.ip_network(text)) for text in cidrs)


def client_allowed(networks: Networks, client_ip: str | None) -> bool:
    """Whether ``client_ip`` is inside one of ``networks`` (always, for an empty list; never, for no address)."""
    if not networks:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    if any(address in network for network in networks):
        return True
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d: IPv4 networks hold them in their IPv4 form.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped is not None and any(mapped in network for network in networks)


def uncovered(parent: Sequence[str], child: Sequence[str]) -> str | None:
    """The first network of ``child`` that ``parent`` does not contain (``None`` when ``child`` is no wider).

    An empty list is everywhere: a key limited to networks cannot mint one that is not, and every child network
    must lie inside one of the parent's.
    """
    if not parent:
        return None
    if not child:
        return "any address"
    parents = compile_networks(parent)
    for network in compile_networks(child):
        if not any(network.version == p.version and network.subnet_of(p) for p in parents):  # type: ignore[arg-type]
            return str(network)
    return None
