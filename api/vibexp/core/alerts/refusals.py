"""Refused authentication attempts, remembered for the alert detectors.

A refused request makes no usage event, yet two alert kinds are about refusals: ``failed_auth`` (typo'd keys that
share a real key's display prefix) and ``retired_key_used`` (a revoked or expired key presented). The auth
middleware appends one ``Refusal`` to the usage recorder's bounded buffer (an append, nothing more, on the request
path) and the recorder's flush hands them to the detectors with the usage batch.

Hook for per-key IP allow-lists (issue 14, not built yet): a request with a valid key from a disallowed address
should append ``Refusal(key_id=..., tenant_id=..., reason=DISALLOWED_ADDRESS, ...)``; the ``failed_auth`` detector
already counts those against the key like typos.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vibexp.core.errors import AuthFailure

__all__ = ["DISALLOWED_ADDRESS", "EXPIRED", "RETIRED_REASONS", "REVOKED", "TYPO", "Refusal"]

#: A well-formed key whose checksum fails: ``key_prefix`` is its display prefix (``vib_`` + 8 hex), no key id.
TYPO = "typo"
REVOKED = AuthFailure.revoked.value
EXPIRED = AuthFailure.expired.value
#: A valid key from an address its allow-list refuses (issue 14): ``key_id`` set.
DISALLOWED_ADDRESS = "disallowed_address"
RETIRED_REASONS = frozenset({REVOKED, EXPIRED})


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    at: datetime
    client_ip: str | None
    #: The refused key when the verifier knows it (revoked, expired, disallowed address).
    key_id: str | None = None
    tenant_id: str | None = None
    #: The display prefix of a typo'd key (never more of it), resolved to key ids in the flush.
    key_prefix: str | None = None
