"""Where this server may send a request a tenant or a client chose: an alert webhook (checked when the URL is set
and again right before every attempt) and an OAuth Client ID Metadata Document (``vibexp.core.oauth.client_documents``,
checked before every fetch). Shared below the domains so both use the one check.

A URL's host is resolved (``getaddrinfo``, which also normalises every spelling of an address: ``2130706433``,
``127.1``, ``0x7f.1``, ``[::ffff:127.0.0.1]``, a name) and each address it yields is checked; the sender then
connects to the address it checked (``Destination.address``), never resolving the name again, so a DNS answer
that changes between the check and the connection (rebinding) cannot redirect it. A name that resolves to several
addresses passes only if all of them do.

Refused, whatever the settings (``DestinationRefused``):

* this server itself: the host and port of any of ``VIBEXP_PUBLIC_URL``, ``VIBEXP_SERVER_URLS`` and
  ``VIBEXP_REPLICA_URLS`` (by name, and by every address those names resolve to), and any loopback or unspecified
  address, or an address of this host's own name, on any of those ports: an alert about a request must never
  cause another request to this server, or to a replica of it;
* link-local addresses (``169.254.0.0/16``, where cloud metadata services answer, ``fe80::/10``), multicast,
  unspecified and reserved addresses: never a receiver.

Refused unless the caller's allowance is true (``VIBEXP_WEBHOOK_ALLOW_PRIVATE`` for webhooks,
``VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS`` for client metadata documents): every other address that is not
globally routable: loopback (``127.0.0.0/8``, ``::1``), private ranges (``10/8``, ``172.16/12``, ``192.168/16``,
``fc00::/7``), shared address space (``100.64/10``), documentation and benchmark ranges. So a tenant cannot use
the server to reach the services of its network; set it when the receiver lives in the cluster or on the same host.

When the URL is set, a name that does not resolve (yet, or from where the CLI runs) is accepted: the check that
counts is the one before each attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "Destination",
    "DestinationPolicy",
    "DestinationRefused",
    "DestinationUnresolved",
    "IPAddress",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Seconds a resolution may take when the URL is set (the CLI, a dashboard form): then it is accepted unchecked.
SET_TIME_RESOLVE_TIMEOUT = 3.0


class DestinationRefused(Exception):
    """The URL may not be delivered to; the message says why, in terms safe to show the tenant."""


class DestinationUnresolved(Exception):
    """The host name did not resolve (or the URL has no usable host): a failed attempt, retried."""


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str
    host: str
    port: int
    #: The checked address to connect to.
    address: IPAddress


def _split(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationUnresolved("the URL does not parse") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise DestinationUnresolved("not an http(s) URL with a host")
    return parts.scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[parts.scheme]


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _resolve(host: str, port: int) -> set[IPAddress]:
    """Every address ``host`` resolves to (a literal in any spelling ``getaddrinfo`` takes included)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    else:
        return {_plain(literal)}
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise DestinationUnresolved("the host name does not resolve") from None
    found: set[IPAddress] = set()
    for info in infos:
        try:
            found.add(_plain(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])))
        except ValueError:
            continue
    if not found:
        raise DestinationUnresolved("the host name does not resolve")
    return found


def _never(address: IPAddress) -> bool:
    if address.is_loopback:  # ::1 lies in ::/8, which ipaddress counts as reserved
        return False
    return address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved


def _local(address: IPAddress) -> bool:
    return address.is_loopback or address.is_unspecified


class DestinationPolicy:
    """``own_urls``: every address this server (and each replica of it) answers at; ``allow_private``: the
    allowance (``VIBEXP_WEBHOOK_ALLOW_PRIVATE``), which ``allowance`` names in the refusal."""

    def __init__(
        self, own_urls: Iterable[str], *, allow_private: bool, allowance: str = "VIBEXP_WEBHOOK_ALLOW_PRIVATE"
    ) -> None:
        self.allow_private = allow_private
        self._allowance = allowance
        own: list[tuple[str, int]] = []
        for url in own_urls:
            try:
                _, host, port = _split(url)
            except DestinationUnresolved:  # a malformed setting cannot match anything
                continue
            own.append((host, port))
        self._own = tuple(own)
        self._own_ports = frozenset(port for _, port in own)

    @classmethod
    def from_settings(cls, settings: object, *, extra_urls: Iterable[str] = ()) -> DestinationPolicy:
        urls = [
            str(getattr(settings, "public_url", "")),
            *getattr(settings, "server_urls", ()),
            *getattr(settings, "replica_urls", ()),
            *extra_urls,
        ]
        return cls([url for url in urls if url], allow_private=bool(getattr(settings, "webhook_allow_private", False)))

    async def _own_addresses(self) -> set[tuple[IPAddress, int]]:
        async def one(host: str, port: int) -> set[tuple[IPAddress, int]]:
            try:
                return {(address, port) for address in await _resolve(host, port)}
            except DestinationUnresolved:
                return set()

        found: set[tuple[IPAddress, int]] = set()
        for addresses in await asyncio.gather(*(one(host, port) for host, port in self._own)):
            found |= addresses
        return found

    async def _host_addresses(self) -> set[IPAddress]:
        """The addresses of this machine's own name (what ``http://<hostname>:<port>`` reaches)."""
        try:
            return await _resolve(socket.gethostname(), 0)
        except DestinationUnresolved:
            return set()

    async def _is_self(self, port: int, addresses: set[IPAddress]) -> bool:
        own_addresses = await self._own_addresses()
        if any((address, port) in own_addresses for address in addresses):
            return True
        if port not in self._own_ports:
            return False
        if any(_local(address) for address in addresses):  # every loopback address, on any of the server's ports
            return True
        return bool(addresses & await self._host_addresses())

    def _refusal(self, address: IPAddress) -> str | None:
        if _never(address):
            return "delivery refused: the URL's host is a link-local, multicast or reserved address"
        if not address.is_global and not self.allow_private:
            return (
                "delivery refused: the URL's host is a loopback or private address "
                f"(allowed only with {self._allowance})"
            )
        return None

    async def check(self, url: str) -> Destination:
        """The address to deliver ``url`` to; ``DestinationRefused`` or ``DestinationUnresolved`` otherwise."""
        scheme, host, port = _split(url)
        if (host, port) in self._own:  # by name, even when the name does not resolve from here
            raise DestinationRefused("URL points at this server; not sent")
        addresses = await _resolve(host, port)
        if await self._is_self(port, addresses):
            raise DestinationRefused("URL points at this server; not sent")
        for address in sorted(addresses, key=lambda a: (a.version, int(a))):
            refusal = self._refusal(address)
            if refusal is not None:
                raise DestinationRefused(refusal)
        chosen = min(addresses, key=lambda a: (a.version, int(a)))  # IPv4 first: any of them passed
        return Destination(scheme=scheme, host=host, port=port, address=chosen)

    async def check_when_set(self, url: str) -> None:
        """Refuse a URL that is certainly refused at delivery; a name that does not resolve now passes."""
        try:
            await asyncio.wait_for(self.check(url), SET_TIME_RESOLVE_TIMEOUT)
        except (DestinationUnresolved, TimeoutError):
            return
