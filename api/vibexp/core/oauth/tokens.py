"""OAuth secrets: ``vibo_`` access tokens, ``vibr_`` refresh tokens and ``vibc_`` authorization codes, each the prefix
and 64 lowercase hex characters (256 bits from ``secrets``), stored only as SHA-256 hex. The prefixes let the log
redaction (``vibexp.core.redaction``) recognise them, and tell a token from a ``vib_`` key at a glance."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "ACCESS_PREFIX",
    "CODE_PREFIX",
    "REFRESH_PREFIX",
    "hash_secret",
    "new_access_token",
    "new_code",
    "new_refresh_token",
    "pkce_matches",
]

ACCESS_PREFIX = "vibo_"
REFRESH_PREFIX = "vibr_"
CODE_PREFIX = "vibc_"
#: RFC 7636: a verifier is 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _new(prefix: str) -> str:
    return prefix + secrets.token_hex(32)


def new_access_token() -> str:
    return _new(ACCESS_PREFIX)


def new_refresh_token() -> str:
    return _new(REFRESH_PREFIX)


def new_code() -> str:
    return _new(CODE_PREFIX)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: ``BASE64URL(SHA256(verifier))`` without padding equals the challenge (compared in constant
    time); a verifier outside the RFC's alphabet or length never matches."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(digest, challenge)
