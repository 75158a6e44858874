"""The API key format: ``vib_`` + 64 lowercase hex characters, stored as SHA-256 hex.

New keys are ``vib_`` + 56 random hex characters (224 bits from ``secrets``) + 8 hex characters of checksum, the
CRC-32 of ``"vib_" + the 56``: a scanner or the server can tell a typo'd key from a real one without a database.
Keys made before the checksum (64 random hex characters) keep the same format and keep working.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

from vibexp.core.errors import AuthFailure, InvalidApiKey

__all__ = [
    "KEY_PREFIX",
    "KEY_RANDOM_LENGTH",
    "KEY_TOKEN_LENGTH",
    "checksum",
    "display_prefix",
    "generate_key",
    "has_valid_checksum",
    "hash_key",
    "parse_authorization",
    "validate_key_format",
]

KEY_PREFIX = "vib_"
KEY_TOKEN_LENGTH = 64
#: Random hex characters of a checksummed key; the remaining 8 are the checksum.
KEY_RANDOM_LENGTH = 56
_HEX = frozenset("0123456789abcdef")
_QUOTES = "\"'`"


def generate_key() -> str:
    head = KEY_PREFIX + secrets.token_hex(KEY_RANDOM_LENGTH // 2)
    return head + checksum(head)


def checksum(head: str) -> str:
    """The 8 hex checksum characters of ``"vib_" + 56 hex``: ``format(zlib.crc32(head.encode()), "08x")``."""
    return format(zlib.crc32(head.encode()), "08x")


def has_valid_checksum(key: str) -> bool:
    """Whether a well-formed key ends with the checksum of what precedes it (true of every key made since)."""
    cut = len(KEY_PREFIX) + KEY_RANDOM_LENGTH
    return checksum(key[:cut]) == key[cut:]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """``vib_`` + the first 8 hex characters: enough to recognise a key, useless to an attacker."""
    return key[: len(KEY_PREFIX) + 8]


def parse_authorization(header: str | None) -> str:
    """Extract the key from an ``Authorization`` header value, naming the problem when there is one."""
    if header is None or not header.strip():
        raise InvalidApiKey(
            "Missing API key: send the header 'Authorization: Bearer vib_...'", reason=AuthFailure.missing
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidApiKey(
            "The Authorization header must use the Bearer scheme: 'Authorization: Bearer vib_...'",
            reason=AuthFailure.wrong_scheme,
        )
    if not token.strip():
        raise InvalidApiKey("No API key after 'Bearer': send 'Authorization: Bearer vib_...'", reason=AuthFailure.empty)
    validate_key_format(token)
    return token


def validate_key_format(token: str) -> None:
    if token != token.strip():
        raise InvalidApiKey(
            "The API key has extra spaces around it: remove them (check for copy-paste errors)",
            reason=AuthFailure.whitespace,
        )
    if token[0] in _QUOTES or token[-1] in _QUOTES:
        raise InvalidApiKey("The API key is wrapped in quotes: send it without quotes", reason=AuthFailure.quoted)
    if not token.startswith(KEY_PREFIX):
        raise InvalidApiKey(
            f"This is not a VibeXP API key: keys start with '{KEY_PREFIX}'", reason=AuthFailure.wrong_prefix
        )
    body = token[len(KEY_PREFIX) :]
    if len(body) != KEY_TOKEN_LENGTH:
        raise InvalidApiKey(
            f"API keys are '{KEY_PREFIX}' followed by {KEY_TOKEN_LENGTH} characters; this one has {len(body)}"
            " (check for missing or extra characters)",
            reason=AuthFailure.wrong_length,
        )
    if not _HEX.issuperset(body):
        raise InvalidApiKey(
            f"The {KEY_TOKEN_LENGTH} characters after '{KEY_PREFIX}' must be lowercase hexadecimal (0-9, a-f)",
            reason=AuthFailure.not_hex,
        )
