"""What the OAuth endpoints accept: an RFC 7591 registration, checked here with RFC error codes (not pydantic's
422: a client reads ``invalid_redirect_uri`` / ``invalid_client_metadata``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vibexp.core.oauth.errors import OAuthError
from vibexp.core.text import check_storable

__all__ = [
    "MAX_REDIRECT_URIS",
    "MAX_URI",
    "ClientRegistration",
    "IssuedTokens",
    "check_redirect_uri",
    "is_loopback_redirect",
]

MAX_REDIRECT_URIS = 10
MAX_URI = 2048
MAX_NAME = 200
_LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """A token answer: the plaintexts exist here once."""

    access_token: str
    refresh_token: str
    expires_in: int
    scopes: tuple[str, ...]
    grant_id: str


def is_loopback_redirect(uri: str) -> bool:
    """``http`` to a loopback address or ``localhost``: a native client's redirect, any port (RFC 8252)."""
    parts = urlsplit(uri)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: object) -> str:
    """An absolute ``https`` URI, or ``http`` to a loopback address; no fragment, no user info."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI:
        raise OAuthError("invalid_redirect_uri", f"each redirect URI must be a string of 1 to {MAX_URI} characters")
    try:
        check_storable(uri)
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise OAuthError("invalid_redirect_uri", f"redirect URI is not a valid URI: {exc}") from None
    if parts.fragment or "#" in uri:
        raise OAuthError("invalid_redirect_uri", "a redirect URI must not have a fragment")
    if parts.username is not None or parts.password is not None:
        raise OAuthError("invalid_redirect_uri", "a redirect URI must not carry user information")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if is_loopback_redirect(uri):
        return uri
    raise OAuthError(
        "invalid_redirect_uri",
        "a redirect URI must use https, or http to a loopback address (127.0.0.1, [::1], localhost)",
    )


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """A public client's registration (RFC 7591 section 2): its name and redirect URIs."""

    client_name: str
    redirect_uris: tuple[str, ...]

    @classmethod
    def parse(cls, body: Any) -> ClientRegistration:
        if not isinstance(body, dict):
            raise OAuthError("invalid_client_metadata", "the registration must be a JSON object")
        uris = body.get("redirect_uris")
        if not isinstance(uris, list) or not uris:
            raise OAuthError("invalid_redirect_uri", "redirect_uris must be a non-empty list")
        if len(uris) > MAX_REDIRECT_URIS:
            raise OAuthError("invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect URIs")
        checked = tuple(dict.fromkeys(check_redirect_uri(uri) for uri in uris))
        method = body.get("token_endpoint_auth_method", "none")
        if method != "none":
            raise OAuthError(
                "invalid_client_metadata",
                'only public clients are supported: token_endpoint_auth_method must be "none"',
            )
        grant_types = body.get("grant_types", ["authorization_code"])
        if not isinstance(grant_types, list) or not set(grant_types) <= {"authorization_code", "refresh_token"}:
            raise OAuthError(
                "invalid_client_metadata", 'grant_types may only list "authorization_code" and "refresh_token"'
            )
        response_types = body.get("response_types", ["code"])
        if not isinstance(response_types, list) or not set(response_types) <= {"code"}:
            raise OAuthError("invalid_client_metadata", 'response_types may only list "code"')
        name = body.get("client_name")
        if name is None:
            name = urlsplit(checked[0]).hostname or "unnamed client"
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise OAuthError("invalid_client_metadata", f"client_name must be 1 to {MAX_NAME} characters")
        try:
            check_storable(name)
        except ValueError as exc:
            raise OAuthError("invalid_client_metadata", f"client_name {exc}") from None
        return cls(client_name=name.strip(), redirect_uris=checked)
