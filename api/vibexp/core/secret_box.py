"""Sealing short secrets with the server key (``VIBEXP_SECRET_KEY``): the key flash and the tenants' webhook secrets.

``Sealer`` seals a short secret for one nonce (HMAC-SHA256 counter-mode keystream plus an HMAC-SHA256 tag,
encrypt-then-MAC; standard library only): the dashboard's key flash (``vibexp.core.keys.flash``) seals a new key in
a cookie with it, and ``SecretBox`` seals the webhook secrets. Below every domain: it imports only the settings and
the errors.

A webhook secret must be usable (the sender signs each delivery with it), so it cannot be stored as a hash like an
API key; instead ``tenants.alert_webhook_secret`` holds ``enc:v1:<nonce>:<sealed>``: the secret sealed by ``Sealer``
under a key derived from ``VIBEXP_SECRET_KEY`` for this purpose alone, with a fresh random nonce each time. A copy
of the database (a backup, a replica, a dump) without the server key does not reveal the secrets.

``VIBEXP_SECRET_KEY`` must be the same in every process that sets or sends them (API replicas, the operator, the
CLI, the migration Job): the Helm chart gives all of them the same Secret. Changing it makes the stored secrets
unreadable: deliveries then fail ("webhook secret cannot be decrypted") until each tenant's secret is set again.

A value without the prefix is a plaintext secret written before migration 0014 (or by an older replica during a
rolling upgrade): it is still used as is, and the 0014 migration seals every one it finds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from vibexp.core.config import DEFAULT_SECRET_KEY, Environment, get_settings
from vibexp.core.errors import InvalidInput

__all__ = ["PREFIX", "Sealer", "SecretBox", "default_box", "is_sealed"]

PREFIX = "enc:v1:"


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class Sealer:
    """Seals a short secret for one nonce; ``open`` returns None for anything forged, altered or for another nonce."""

    def __init__(self, secret_key: str) -> None:
        root = secret_key.encode()
        self._enc = hmac.new(root, b"vibexp.key-flash.enc.v1", hashlib.sha256).digest()
        self._mac = hmac.new(root, b"vibexp.key-flash.mac.v1", hashlib.sha256).digest()

    def _stream(self, nonce: str, length: int) -> bytes:
        blocks = (
            hmac.new(self._enc, f"{nonce}:{i}".encode(), hashlib.sha256).digest() for i in range(length // 32 + 1)
        )
        return b"".join(blocks)[:length]

    def seal(self, nonce: str, plaintext: str) -> str:
        data = plaintext.encode()
        cipher = bytes(a ^ b for a, b in zip(data, self._stream(nonce, len(data)), strict=True))
        tag = hmac.new(self._mac, nonce.encode() + b"." + cipher, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(cipher + tag).decode().rstrip("=")

    def open(self, nonce: str, sealed: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        except ValueError:
            return None
        cipher, tag = raw[:-32], raw[-32:]
        expected = hmac.new(self._mac, nonce.encode() + b"." + cipher, hashlib.sha256).digest()
        if len(raw) < 33 or not hmac.compare_digest(tag, expected):
            return None
        data = bytes(a ^ b for a, b in zip(cipher, self._stream(nonce, len(cipher)), strict=True))
        return data.decode(errors="replace")


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        # A key of its own, derived for this purpose: the same VIBEXP_SECRET_KEY also signs sessions and seals flashes.
        derived = hmac.new(secret_key.encode(), b"vibexp.webhook-secret.v1", hashlib.sha256).hexdigest()
        self._sealer = Sealer(derived)

    def seal(self, plaintext: str) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{PREFIX}{nonce}:{self._sealer.seal(nonce, plaintext)}"

    def open(self, stored: str) -> str | None:
        """The plaintext secret; ``None`` when it was sealed under another server key (or altered)."""
        if not is_sealed(stored):
            return stored  # written before 0014 sealed them: still the secret itself
        nonce, _, sealed = stored[len(PREFIX) :].partition(":")
        return self._sealer.open(nonce, sealed) if nonce and sealed else None


def default_box() -> SecretBox:
    """The box of this process's ``VIBEXP_SECRET_KEY``; refuses to seal with the development default in production."""
    settings = get_settings()
    if settings.environment is Environment.production and settings.secret_key == DEFAULT_SECRET_KEY:
        raise InvalidInput("VIBEXP_SECRET_KEY must be set (the same in every process) to store a webhook secret")
    return SecretBox(settings.secret_key)
