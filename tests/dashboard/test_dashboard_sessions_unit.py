"""The session signer on its own (no server, no database)."""

from __future__ import annotations

import base64
import json

from vibexp.api.dashboard.sessions import SESSION_LIFETIME, SessionData, SessionSigner, password_fingerprint


def test_a_session_round_trips_and_a_forgery_does_not() -> None:
    signer = SessionSigner("k" * 40, secure=False)
    data = SessionData.for_user(user_id="u1", fingerprint=password_fingerprint("hash"))
    value = signer.dumps(data)
    assert signer.loads(value) == data
    assert SessionSigner("other-key" * 5, secure=False).loads(value) is None
    body, tag = value.split(".")
    assert signer.loads(f"{body}x.{tag}") is None
    assert signer.loads(None) is None
    assert signer.loads("a.b.c") is None
    assert signer.loads("é.ü") is None  # not base64, not ASCII: refused, not an error
    assert signer.loads(f"{body}.{tag}é") is None


def test_a_session_expires_after_its_lifetime() -> None:
    signer = SessionSigner("k" * 40, secure=False)
    data = SessionData.for_user(user_id="u1", fingerprint="f")
    value = signer.dumps(data)
    assert signer.loads(value, now=data.iat + SESSION_LIFETIME - 1) is not None
    assert signer.loads(value, now=data.iat + SESSION_LIFETIME) is None


def test_signing_in_renews_the_session_id_and_csrf_token() -> None:
    before = SessionData.anonymous()
    after = SessionData.for_user(user_id="u1", fingerprint="f")
    assert after.sid != before.sid and after.csrf != before.csrf


def test_a_cookie_from_before_the_switcher_means_the_home_account() -> None:
    """A session signed before ``tid`` existed loads with none (the home account); a chosen account round-trips."""
    signer = SessionSigner("k" * 40, secure=False)
    data = SessionData.for_user(user_id="u1", fingerprint="f")
    raw = {"sid": data.sid, "csrf": data.csrf, "iat": data.iat, "uid": data.uid, "fp": data.fp}
    body = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    loaded = signer.loads(f"{body}.{signer._tag(body)}")
    assert loaded == data and loaded.tid == ""
    chosen = data.in_account("t2")
    assert signer.loads(signer.dumps(chosen)) == chosen


def test_choosing_an_account_keeps_the_session_and_renews_its_csrf_token() -> None:
    """Signing out still ends it (same ``sid``), its lifetime does not grow (same ``iat``), and a form from the
    account left behind is refused (new CSRF token)."""
    data = SessionData.for_user(user_id="u1", fingerprint="f")
    chosen = data.in_account("t2")
    assert (chosen.sid, chosen.iat, chosen.uid, chosen.fp, chosen.tid) == (data.sid, data.iat, "u1", "f", "t2")
    assert chosen.csrf != data.csrf
