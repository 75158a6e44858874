"""Which URLs a tenant may set as its alert webhook (``alert_webhook_url``), and its secret.

The rule:

* ``http`` or ``https``, with a host, at most 2000 characters, no ``user:password@`` (the URL shows in the audit
  trail and the delivery log; the HMAC signature is what authenticates a delivery);
* not this server itself: not the host and port of ``VIBEXP_PUBLIC_URL`` nor of any of ``VIBEXP_SERVER_URLS``
  (default ports 80/443 filled in, host names compared case-insensitively), where every loopback name
  (``localhost``, ``127.0.0.0/8``, ``::1``, ``0.0.0.0``) counts as the same host. A webhook into the API would
  answer each alert with a refused request, which could raise the next alert: a loop.

This is the check by spelling; ``vibexp.core.alerts.settings`` then resolves the host and applies the sender's own check
(``vibexp.core.destinations``: every spelling of loopback, the host's own name, replicas, private and
metadata addresses), which the sender repeats before every attempt. The sender never follows redirects, so a
receiver cannot bounce deliveries back here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from vibexp.core.errors import InvalidInput

__all__ = ["MAX_SECRET", "MAX_URL", "MIN_SECRET", "check_webhook_secret", "check_webhook_url"]

MAX_URL = 2000
MIN_SECRET = 16
MAX_SECRET = 200
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK = "loopback"


def _host(name: str) -> str:
    """The host as compared: lower case, every loopback spelling as one."""
    name = name.lower().rstrip(".")
    if name in ("localhost", "0.0.0.0", "::") or name.endswith(".localhost"):  # noqa: S104 - compared, not bound
        return _LOOPBACK
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1
    if address.is_loopback or (mapped is not None and mapped.is_loopback):
        return _LOOPBACK
    return address.compressed


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise InvalidInput(f"webhook URL {url!r} does not parse: {exc}") from None
    return parts


def _address(parts: SplitResult) -> tuple[str, int] | None:
    if not parts.hostname or parts.scheme not in _DEFAULT_PORTS:
        return None
    return _host(parts.hostname), parts.port or _DEFAULT_PORTS[parts.scheme]


def check_webhook_url(url: str, *, server_urls: Iterable[str]) -> str:
    """``url`` if a tenant may use it as its alert webhook, else ``InvalidInput`` saying why."""
    if len(url) > MAX_URL:
        raise InvalidInput(f"webhook URL: at most {MAX_URL} characters")
    if not url.isprintable() or any(char.isspace() for char in url):
        raise InvalidInput("webhook URL: no spaces or control characters")
    parts = _split(url)
    if parts.scheme not in _DEFAULT_PORTS:  # urlsplit lower-cases the scheme
        raise InvalidInput(f"webhook URL {url!r}: must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput(f"webhook URL {url!r}: has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("webhook URL: no user:password@ in it (deliveries are authenticated by their signature)")
    target = _address(parts)
    for own in server_urls:
        try:
            mine = _address(urlsplit(own))
        except ValueError:  # a malformed setting cannot match anything
            continue
        if mine is not None and mine == target:
            raise InvalidInput(f"webhook URL {url!r} points at this server ({own}); alerts must go to another receiver")
    return url


def check_webhook_secret(secret: str) -> str:
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise InvalidInput(
            f"webhook secret: {MIN_SECRET} to {MAX_SECRET} characters (got {len(secret)}); e.g. `openssl rand -hex 32`"
        )
    if not secret.isprintable() or any(char.isspace() for char in secret):
        raise InvalidInput("webhook secret: printable characters without spaces")
    return secret
