"""Handshake-era sessions without server state: a sealed ``Mcp-Session-Id``.

A handshake-era client (2025-06-18 / 2025-03-26 ``initialize``: Claude Code, Cursor, VS Code) says once, at
``initialize``, whether it can show a form (``capabilities.elicitation``); a stateless server forgets that by the
next request. So for a key that asks before destructive tools (``confirm_destructive``; no other key needs it) the
``initialize`` answer carries an ``Mcp-Session-Id`` that is itself what the client declared: the key's id, whether
the client declared form elicitation, its ``clientInfo`` name, the protocol version, when it was issued, and a
random nonce (the session's identity), sealed (encrypted and authenticated, ``vibexp.core.secret_box.Sealer``)
under a key derived from ``secret_key``. The client echoes it on every request (the spec requires it), and any
replica opens it: nothing is stored anywhere.

A session id that does not open, or that was issued to another key, is a session this server does not know: 404
with the API's error body, and the client starts a new session with ``initialize`` (the spec's rule). ``DELETE``
with a valid session id is 204: there is nothing to end. Opening is paid once per session id and process: the opened
sessions are kept by value in a small bounded dict (``SessionSeal.max_cached``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Scope

from vibexp.core.secret_box import Sealer

__all__ = [
    "SESSION_HEADER",
    "HandshakeSession",
    "SessionSeal",
    "handshake_era",
    "is_confirmed",
    "mark_confirmed",
    "session_header",
    "session_in",
    "with_session",
]

SESSION_HEADER = "mcp-session-id"
_HEADER = SESSION_HEADER.encode()
_PROTOCOL_HEADER = b"mcp-protocol-version"
#: Where the front door leaves the request's opened session for the SDK middleware (``confirm.ConfirmationGate``).
_SCOPE_KEY = "vibexp.mcp.session"
#: Set by the front door on the request it forwards once the person accepted (``confirm.ConfirmationGate`` lets it
#: through); nothing a client sends can set it.
_CONFIRMED_KEY = "vibexp.mcp.confirmed"
_MAX_TOKEN = 1024
#: What ``issue`` writes: a URL-safe base64 nonce, a dot, the URL-safe base64 seal (unpadded).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{44,}")
_MAX_CLIENT_NAME = 100


@dataclass(frozen=True, slots=True)
class HandshakeSession:
    key_id: str
    #: The client declared form elicitation at ``initialize``: it can be asked.
    elicits: bool
    client_name: str
    protocol_version: str
    issued_at: int
    #: The session's identity (random): a relayed answer must come from the session that was asked.
    nonce: str


def session_header(scope: Scope) -> str | None:
    """The request's ``Mcp-Session-Id``, if it sent one (a scan of the headers: nothing parsed)."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            return str(value.decode("latin-1"))
    return None


def handshake_era(scope: Scope) -> bool:
    """Whether the request speaks a handshake-era revision (its ``MCP-Protocol-Version`` is one, or absent)."""
    version = next((v for k, v in scope["headers"] if k == _PROTOCOL_HEADER), None)
    return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS


def session_in(scope: Scope) -> HandshakeSession | None:
    """The session the front door opened for this request, if any."""
    found = scope.get(_SCOPE_KEY)
    return found if isinstance(found, HandshakeSession) else None


def with_session(scope: Scope, session: HandshakeSession) -> None:
    scope[_SCOPE_KEY] = session


def mark_confirmed(scope: Scope) -> None:
    scope[_CONFIRMED_KEY] = True


def is_confirmed(scope: Scope) -> bool:
    return scope.get(_CONFIRMED_KEY) is True


def _canonical(sealed: str) -> bool:
    """Whether ``sealed`` is the one spelling ``issue`` writes (unpadded, no stray bits in its last character): a
    session has one id, not several that open alike."""
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except (binascii.Error, ValueError):
        return False
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") == sealed


class SessionSeal:
    """Issues and opens sealed session ids (module docstring)."""

    def __init__(self, secret_key: str, *, max_cached: int = 4096) -> None:
        derived = hmac.new(secret_key.encode(), b"vibexp.mcp-session.v1", hashlib.sha256).hexdigest()
        self._sealer = Sealer(derived)
        self.max_cached = max_cached
        self._opened: OrderedDict[str, HandshakeSession | None] = OrderedDict()

    def issue(self, key_id: str, *, elicits: bool, client_name: str, protocol_version: str) -> str:
        """A session id for ``key_id``'s client, which declared (or not) form elicitation at ``initialize``."""
        client_name, version = client_name[:_MAX_CLIENT_NAME], protocol_version[:32]
        nonce = secrets.token_urlsafe(16)
        payload = {"k": key_id, "e": elicits, "c": client_name, "v": version, "t": int(time.time())}
        return f"{nonce}.{self._sealer.seal(nonce, json.dumps(payload, separators=(',', ':')))}"

    def open(self, token: str, key_id: str) -> HandshakeSession | None:
        """The session ``token`` names if this server issued it to ``key_id``; else ``None``."""
        if token in self._opened:
            self._opened.move_to_end(token)
            found = self._opened[token]
        else:
            found = self._open(token)
            self._opened[token] = found
            while len(self._opened) > self.max_cached:
                self._opened.popitem(last=False)
        return found if found is not None and found.key_id == key_id else None

    def _open(self, token: str) -> HandshakeSession | None:
        if len(token) > _MAX_TOKEN or _TOKEN.fullmatch(token) is None:
            return None
        nonce, _, sealed = token.partition(".")
        if not _canonical(sealed):
            return None
        opened = self._sealer.open(nonce, sealed)
        try:
            payload = json.loads(opened) if opened is not None else None
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        key_id, elicits, name, version, issued = (payload.get(k) for k in ("k", "e", "c", "v", "t"))
        if not (
            isinstance(key_id, str)
            and isinstance(elicits, bool)
            and isinstance(name, str)
            and isinstance(version, str)
            and isinstance(issued, int)
        ):
            return None
        return HandshakeSession(key_id, elicits, name, version, issued, nonce)
