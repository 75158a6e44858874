"""OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP authorization, "Client ID
Metadata Documents"): a ``client_id`` that is an ``https`` URL names a JSON document, fetched here, that says who the
client is and where it may be sent back to.

The URL (checked before any request):

* ``https`` (``http`` only with ``VIBEXP_OAUTH_ALLOW_HTTP_CLIENT_IDS``, for development), a host, a path other than
  ``/``, no fragment, no user information, no ``.`` or ``..`` path segment, at most 2048 characters;
* with ``VIBEXP_OAUTH_CLIENT_DOMAINS`` set, a host that is one of those domains or under one of them.

The fetch: one ``GET`` to the address the shared destination check (``vibexp.core.destinations``) resolved and
accepted (the host name stays in ``Host``, SNI and the certificate check, so a DNS answer that changes in between
cannot move it); this server, link-local and metadata addresses are refused, and loopback and private ones unless
``VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS``. No redirect is followed (a 3xx is a refusal), nothing but ``200`` is
accepted, the body is read as a stream and refused past ``MAX_BYTES`` (5 KiB, the draft's recommendation), and the
whole exchange, resolution included, has ``TIMEOUT`` (5 s). No proxy from the environment; the certificate is
checked against certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (a private CA).

The document (draft section 4.1, and what this server supports): a JSON object whose ``client_id`` equals the URL
exactly; no ``client_secret`` nor ``client_secret_expires_at``, no private key material in ``jwks``;
``token_endpoint_auth_method`` ``none`` (public clients only); ``redirect_uris`` a non-empty list of ``https`` URIs
or ``http`` loopback ones; ``grant_types`` and ``response_types``, if given, within
``authorization_code``/``refresh_token`` and ``code``; ``client_name`` optional (the URL's host otherwise).
The same rules as a Dynamic Client Registration (``schemas.ClientRegistration``).

At most ``CONCURRENT_FETCHES`` (16) fetches run at once in a process; the HTTP adapter also counts the fetches of
documents not in the cache per client address (``VIBEXP_OAUTH_REGISTER_LIMIT`` per ``_WINDOW``, like registrations).

The cache: the last ``CACHE_SIZE`` (1000) documents in this process, least recently used out first, each kept for its
``Cache-Control: max-age`` bounded to [``MIN_TTL``, ``MAX_TTL``] (5 minutes, 24 hours); no ``max-age`` (or
``no-store``/``no-cache``) keeps it ``MIN_TTL``. A failed fetch is not cached. The refusal's message is shown to
the person (the authorization endpoint's error page) and to the client (``invalid_client``): it names the rule,
never the document's content.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from vibexp.core.destinations import DestinationPolicy, DestinationRefused, DestinationUnresolved
from vibexp.core.oauth.errors import OAuthError
from vibexp.core.oauth.schemas import MAX_URI, ClientRegistration
from vibexp.core.text import check_storable

__all__ = [
    "CACHE_SIZE",
    "CONCURRENT_FETCHES",
    "MAX_BYTES",
    "MAX_TTL",
    "MIN_TTL",
    "TIMEOUT",
    "ClientDocument",
    "ClientDocumentError",
    "ClientDocuments",
    "is_document_url",
]

#: The draft's recommended maximum (section "Maximum Response Size"): real documents are a few hundred bytes.
MAX_BYTES = 5 * 1024
TIMEOUT = 5.0
CACHE_SIZE = 1000
#: Fetches one process makes at once; more wait (within their timeout).
CONCURRENT_FETCHES = 16
MIN_TTL = 300.0
MAX_TTL = 86400.0

#: JWK members that only a private (or symmetric) key has (RFC 7518 section 6).
_PRIVATE_KEY_PARAMETERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ALLOW_HTTP = "VIBEXP_OAUTH_ALLOW_HTTP_CLIENT_IDS"
_ALLOW_PRIVATE = "VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS"


class ClientDocumentError(Exception):
    """The client_id URL or its document is refused; the message is safe to show the person and the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ClientDocument:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    #: The URL's host: what the document's owner proved by serving it there.
    host: str


def is_document_url(client_id: str) -> bool:
    """Whether ``client_id`` names a metadata document (an http(s) URL) rather than a registered client."""
    return client_id[:8].lower() == "https://" or client_id[:7].lower() == "http://"


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    seconds: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                seconds = float(int(value.strip().strip('"')))
            except ValueError:
                return None
    return seconds


class ClientDocuments:
    """Fetches, checks and caches client metadata documents for one process (``install_oauth`` makes one)."""

    def __init__(
        self,
        *,
        own_urls: Iterable[str] = (),
        allow_private: bool = False,
        allow_http: bool = False,
        domains: Iterable[str] = (),
        timeout: float = TIMEOUT,
        max_bytes: int = MAX_BYTES,
        capacity: int = CACHE_SIZE,
        min_ttl: float = MIN_TTL,
        max_ttl: float = MAX_TTL,
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.monotonic,
        concurrent: int = CONCURRENT_FETCHES,
    ) -> None:
        self._fetching = asyncio.Semaphore(concurrent)
        self._policy = DestinationPolicy(own_urls, allow_private=allow_private, allowance=_ALLOW_PRIVATE)
        self._allow_http = allow_http
        self.domains = tuple(domain.strip().lower().strip(".") for domain in domains if domain.strip().strip("."))
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._capacity = capacity
        self._min_ttl = min_ttl
        self._max_ttl = max(max_ttl, min_ttl)
        # One context for every fetch: certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set.
        self._verify = httpx.create_ssl_context() if verify is True else verify
        self._clock = clock
        self._cache: OrderedDict[str, tuple[ClientDocument, float]] = OrderedDict()

    @property
    def restricted(self) -> bool:
        """``VIBEXP_OAUTH_CLIENT_DOMAINS`` is set: only documents on those domains, no registered clients."""
        return bool(self.domains)

    def _on_allowed_domain(self, host: str) -> bool:
        return any(host == domain or host.endswith("." + domain) for domain in self.domains)

    def check_url(self, client_id: str) -> str:
        """The URL's host, or ``ClientDocumentError`` naming the rule it breaks."""
        if len(client_id) > MAX_URI:
            raise ClientDocumentError(f"The client_id URL is longer than {MAX_URI} characters.")
        try:
            check_storable(client_id)
            parts = urlsplit(client_id)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ClientDocumentError("The client_id is not a valid URL.") from None
        scheme = parts.scheme.lower()
        if scheme != "https" and not (scheme == "http" and self._allow_http):
            raise ClientDocumentError(f"The client_id URL must use https (http only with {_ALLOW_HTTP}).")
        if not client_id.startswith(scheme + "://"):  # urlsplit lowers it; the id is compared as written
            raise ClientDocumentError("The client_id URL's scheme must be written in lower case.")
        if not parts.hostname:
            raise ClientDocumentError("The client_id URL has no host.")
        if parts.username is not None or parts.password is not None:
            raise ClientDocumentError("The client_id URL must not carry user information.")
        if parts.fragment or "#" in client_id:
            raise ClientDocumentError("The client_id URL must not have a fragment.")
        if parts.path in ("", "/"):
            raise ClientDocumentError("The client_id URL must have a path (the document's, not the site's root).")
        if any(segment in (".", "..") for segment in parts.path.split("/")):
            raise ClientDocumentError("The client_id URL must not have . or .. path segments.")
        host = parts.hostname.lower().rstrip(".")
        if self.domains and not self._on_allowed_domain(host):
            raise ClientDocumentError(
                f"This VibeXP server accepts applications only from {', '.join(self.domains)}; {host} is not one."
            )
        return host

    async def get(self, client_id: str) -> ClientDocument:
        """The checked document of ``client_id`` (from the cache while fresh), or ``ClientDocumentError``."""
        host = self.check_url(client_id)
        cached = self._cache.get(client_id)
        now = self._clock()
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(client_id)
            return cached[0]
        self._cache.pop(client_id, None)
        document, ttl = await self._fetch(client_id, host)
        self._cache[client_id] = (document, self._clock() + ttl)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return document

    def cached(self, client_id: str) -> bool:
        """Whether ``get`` would answer ``client_id`` from the cache (no request)."""
        entry = self._cache.get(client_id)
        return entry is not None and entry[1] > self._clock()

    def forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)

    def __len__(self) -> int:
        return len(self._cache)

    async def _fetch(self, client_id: str, host: str) -> tuple[ClientDocument, float]:
        try:
            async with asyncio.timeout(self._timeout), self._fetching:
                body, cache_control = await self._download(client_id)
        except TimeoutError:
            raise ClientDocumentError(
                f"The application's metadata document at {host} did not arrive within {self._timeout:g} s."
            ) from None
        document = self._parse(client_id, host, body)
        max_age = _max_age(cache_control)
        ttl = self._min_ttl if max_age is None else min(max(max_age, self._min_ttl), self._max_ttl)
        return document, ttl

    async def _download(self, client_id: str) -> tuple[bytes, str | None]:
        try:
            destination = await self._policy.check(client_id)
        except DestinationRefused as exc:
            reason = str(exc).removeprefix("delivery refused: ").removesuffix("; not sent")
            raise ClientDocumentError(f"VibeXP will not fetch the application's metadata document: {reason}.") from None
        except DestinationUnresolved:
            raise ClientDocumentError("The client_id URL's host does not resolve.") from None
        url = httpx.URL(client_id)
        pinned = url.copy_with(host=str(destination.address))
        headers = {"Host": url.netloc.decode("ascii"), "Accept": "application/json", "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        async with httpx.AsyncClient(
            verify=self._verify,
            follow_redirects=False,  # a redirect could point anywhere, this server too: a refusal
            timeout=httpx.Timeout(self._timeout),
            trust_env=False,  # no proxy between this process and the address it checked
            headers={"User-Agent": "VibeXP-OAuth/1"},
        ) as http:
            try:
                request = http.build_request("GET", pinned, headers=headers, extensions=extensions)
                response = await http.send(request, stream=True)
            except httpx.HTTPError:
                raise ClientDocumentError(
                    f"VibeXP could not reach the application's metadata document at {destination.host}."
                ) from None
            try:
                if 300 <= response.status_code < 400:
                    raise ClientDocumentError(
                        f"The application's metadata document answered HTTP {response.status_code} (a redirect): "
                        "redirects are not followed."
                    )
                if response.status_code != 200:
                    raise ClientDocumentError(
                        f"The application's metadata document answered HTTP {response.status_code}."
                    )
                too_big = ClientDocumentError(
                    f"The application's metadata document is larger than {self._max_bytes // 1024} KiB."
                )
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise ClientDocumentError("The application's metadata document must not be compressed.")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise too_big
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise too_big
            except httpx.HTTPError:
                raise ClientDocumentError(
                    f"VibeXP could not read the application's metadata document at {destination.host}."
                ) from None
            finally:
                await response.aclose()
        return bytes(body), response.headers.get("cache-control")

    def _parse(self, client_id: str, host: str, body: bytes) -> ClientDocument:
        try:
            data: Any = json.loads(body)
        except ValueError:  # UnicodeDecodeError included
            raise ClientDocumentError("The application's metadata document is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ClientDocumentError("The application's metadata document is not a JSON object.")
        if data.get("client_id") != client_id:
            raise ClientDocumentError(
                "The application's metadata document names another client_id than the URL it was fetched from."
            )
        if "client_secret" in data or "client_secret_expires_at" in data:
            raise ClientDocumentError("The application's metadata document must not contain a client secret.")
        keys = data.get("jwks", {}).get("keys", []) if isinstance(data.get("jwks"), dict) else []
        if isinstance(keys, list) and any(
            isinstance(key, dict) and _PRIVATE_KEY_PARAMETERS & key.keys() for key in keys
        ):
            raise ClientDocumentError("The application's metadata document must not contain private key material.")
        try:
            registration = ClientRegistration.parse(data)
        except OAuthError as exc:
            raise ClientDocumentError(f"The application's metadata document is refused: {exc.description}.") from None
        name = registration.client_name if data.get("client_name") is not None else host
        return ClientDocument(client_id=client_id, name=name, redirect_uris=registration.redirect_uris, host=host)
