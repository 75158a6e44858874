"""Dashboard sessions as HMAC-signed cookies (no session table).

The cookie carries ``{sid, uid, csrf, iat, fp, tid}`` as base64url JSON plus an HMAC-SHA256 tag keyed by a key derived
from ``ApiSettings.secret_key``. Why signed cookies rather than a table: every API replica can check a session without a
database round trip of its own beyond loading the user, and there is no schema to migrate. What bounds a session:

* an absolute lifetime (``SESSION_LIFETIME``) checked against the signed ``iat``;
* ``fp``, a fingerprint of the user's password hash: a new password (or a re-hash) ends every existing session;
* sign-out deletes the cookie, puts its ``sid`` on this process's deny-list, and records it in the database
  (``vibexp.core.users.revoked_sessions``), which every replica checks when it loads the signed-in user; so a copied
  cookie stops working at once everywhere.

Anonymous visitors get a session too (``uid`` empty) so the sign-in form has a CSRF token to check.

``tid`` is the account the person chose in the dashboard's switcher (or joined last); empty — and in cookies signed
before it existed — means their home account. Choosing an account keeps the session (its ``sid``, so signing out
still ends it, and its ``iat``) but gives it a new CSRF token: a form still open in another tab for the account left
behind is refused ("this form has expired") instead of acting in the new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace

from starlette.responses import Response

__all__ = [
    "SESSION_LIFETIME",
    "SessionData",
    "SessionSigner",
    "cookie_name",
    "password_fingerprint",
]

#: Seconds a session lives after sign-in, whatever happens.
SESSION_LIFETIME = 8 * 3600
_DENYLIST_MAX = 10_000


def cookie_name(secure: bool) -> str:
    """``__Host-`` pins a Secure cookie to this host and path ``/``; browsers refuse it over plain HTTP."""
    return "__Host-vibexp_session" if secure else "vibexp_session"


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SessionData:
    sid: str
    csrf: str
    iat: int
    uid: str = ""
    fp: str = ""
    tid: str = ""

    @classmethod
    def anonymous(cls) -> SessionData:
        return cls(sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32), iat=int(time.time()))

    @classmethod
    def for_user(cls, *, user_id: str, fingerprint: str, tenant_id: str = "") -> SessionData:
        """A fresh session id and CSRF token at sign-in, so a token planted before sign-in is useless after it."""
        return replace(cls.anonymous(), uid=user_id, fp=fingerprint, tid=tenant_id)

    def in_account(self, tenant_id: str) -> SessionData:
        """The same session acting in another account of the person's, with a new CSRF token."""
        return replace(self, tid=tenant_id, csrf=secrets.token_urlsafe(32))

    @property
    def expires_at(self) -> int:
        return self.iat + SESSION_LIFETIME


class SessionSigner:
    """Signs and checks session cookies; holds this process's deny-list of signed-out sessions."""

    def __init__(self, secret_key: str, *, secure: bool) -> None:
        self._key = hmac.new(secret_key.encode(), b"vibexp.dashboard.session.v1", hashlib.sha256).digest()
        self.secure = secure
        self.cookie = cookie_name(secure)
        self._denied: dict[str, int] = {}  # sid -> when it would expire anyway

    def dumps(self, data: SessionData) -> str:
        body = _b64(
            json.dumps(
                {"sid": data.sid, "csrf": data.csrf, "iat": data.iat, "uid": data.uid, "fp": data.fp, "tid": data.tid},
                separators=(",", ":"),
            ).encode()
        )
        return f"{body}.{self._tag(body)}"

    def loads(self, value: str | None, *, now: float | None = None) -> SessionData | None:
        """The session in a cookie value, or None when it is missing, forged, expired or signed out."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        body, tag = value.split(".")
        if not hmac.compare_digest(tag.encode(), self._tag(body).encode()):  # bytes: any text compares safely
            return None
        try:
            raw = json.loads(_unb64(body))
            data = SessionData(
                sid=str(raw["sid"]),
                csrf=str(raw["csrf"]),
                iat=int(raw["iat"]),
                uid=str(raw["uid"]),
                fp=str(raw["fp"]),
                tid=str(raw.get("tid", "")),  # a cookie from before the switcher: the home account
            )
        except (ValueError, KeyError, TypeError):
            return None
        now = time.time() if now is None else now
        if not data.iat - 60 <= now < data.expires_at or data.sid in self._denied:
            return None
        return data

    def deny(self, data: SessionData) -> None:
        """Sign-out: refuse this session id from now on (in this process) until it would have expired."""
        now = int(time.time())
        if len(self._denied) >= _DENYLIST_MAX:
            self._denied = {sid: exp for sid, exp in self._denied.items() if exp > now}
            while len(self._denied) >= _DENYLIST_MAX:
                self._denied.pop(next(iter(self._denied)))
        self._denied[data.sid] = data.expires_at

    def set_cookie(self, response: Response, data: SessionData) -> None:
        response.set_cookie(
            self.cookie,
            self.dumps(data),
            max_age=max(0, data.expires_at - int(time.time())),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True, samesite="lax")

    def _tag(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
