"""The sealed handshake-era session id (``vibexp.api.mcp.sessions.SessionSeal``): what it carries, that nothing
forged, altered, sealed under another secret or issued to another key opens, that it is made of the characters the
spec allows, and that opening is paid once per id (a bounded cache), not on every request."""

from __future__ import annotations

import base64
import re

import pytest

from vibexp.api.mcp.sessions import HandshakeSession, SessionSeal
from vibexp.core.secret_box import Sealer

SECRET = "s" * 40
KEY = "key-1"


def _decoded(token: str) -> bytes:
    sealed = token.partition(".")[2]
    return base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))


def _issue(seal: SessionSeal, *, elicits: bool = True) -> str:
    return seal.issue(KEY, elicits=elicits, client_name="claude-code", protocol_version="2025-06-18")


@pytest.mark.parametrize("elicits", [True, False])
def test_a_session_id_carries_what_the_client_declared(elicits: bool) -> None:
    seal = SessionSeal(SECRET)
    token = _issue(seal, elicits=elicits)
    assert re.fullmatch(r"[\x21-\x7e]+", token) and len(token) < 300, token  # visible ASCII, as the spec requires
    opened = SessionSeal(SECRET).open(token, KEY)  # any replica with the secret opens it
    assert isinstance(opened, HandshakeSession)
    assert (opened.key_id, opened.elicits, opened.client_name, opened.protocol_version) == (
        KEY,
        elicits,
        "claude-code",
        "2025-06-18",
    )
    assert opened.nonce == token.split(".")[0] and opened.issued_at > 0
    assert _issue(seal) != _issue(seal)  # each session its own


def test_nothing_forged_or_foreign_opens() -> None:
    seal = SessionSeal(SECRET)
    token = _issue(seal)
    nonce, _, sealed = token.partition(".")
    flipped = sealed[:-1] + ("A" if sealed[-1] != "A" else "B")
    for bad in (f"{nonce}.{flipped}", f"x{nonce}.{sealed}", "no-dot", "", ".", "a" * 5000, f"{nonce}.{sealed}=="):
        assert seal.open(bad, KEY) is None, bad
    # Another spelling of the same bytes (the last character's unused bits set) is not the session's id either.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same = [f"{nonce}.{sealed[:-1]}{c}" for c in alphabet if c != sealed[-1]]
    same = [t for t in same if _decoded(t) == _decoded(token)]
    assert len(sealed) % 4 == 0 or same, "an unpadded seal always has another spelling"
    for other in same:
        assert seal.open(other, KEY) is None, other
    assert seal.open(token, "key-2") is None  # issued to another key
    assert SessionSeal("t" * 40).open(token, KEY) is None  # another deployment's secret
    not_a_session = Sealer("whatever").seal(nonce, '{"k": "key-1"}')
    assert seal.open(f"{nonce}.{not_a_session}", KEY) is None


def test_opening_is_paid_once_per_id_and_the_cache_is_bounded() -> None:
    seal = SessionSeal(SECRET, max_cached=3)
    opened: list[str] = []
    real = seal._open

    def counting(token: str) -> HandshakeSession | None:
        opened.append(token)
        return real(token)

    seal._open = counting  # type: ignore[method-assign]
    tokens = [_issue(seal) for _ in range(4)]
    for _ in range(100):
        assert seal.open(tokens[0], KEY) is not None
    assert opened == [tokens[0]]
    for token in tokens:
        seal.open(token, KEY)
    assert len(seal._opened) == 3 and tokens[0] not in seal._opened  # the oldest went first
    assert seal.open(tokens[0], KEY) is not None  # and is opened again when it comes back
    assert opened.count(tokens[0]) == 2
