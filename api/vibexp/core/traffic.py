"""What the request path saw, for the layers that look at it later: usage events and refused attempts.

The auth middleware makes one ``UsageEvent`` per authenticated operation (an API key's, or an OAuth grant's on
``/mcp/v1/connect``: ``UsageEvent.credential``) and one ``Refusal`` per refused authentication attempt, and appends
them to the usage recorder's buffers (``vibexp.core.usage.recorder``); each flush stores the events and hands both to
the alert detectors (``vibexp.core.alerts.detectors``). Both the recorder and the detectors import this module, and
it imports neither (nor any other domain): only the text and address helpers below every domain. The action log's
column lengths are declared here once, and ``KeyAction`` (``vibexp.core.usage.models``) declares its columns with
them.

Usage events: an event is made storable when it is made (names and routes without control characters or lone
surrogates, cut to their columns; the client address an IP literal or none), so nothing a client sends can fail the
batch it is flushed with.

Refusals: a refused request makes no usage event, yet two alert kinds are about refusals: ``failed_auth`` (typo'd
keys that share a real key's display prefix) and ``retired_key_used`` (a revoked or expired key presented). The auth
middleware appends one ``Refusal`` to the usage recorder's bounded buffer (an append, nothing more, on the request
path) and the recorder's flush hands them to the detectors with the usage batch.

Hook for per-key IP allow-lists (issue 14, not built yet): a request with a valid key from a disallowed address
should append ``Refusal(key_id=..., tenant_id=..., reason=DISALLOWED_ADDRESS, ...)``; the ``failed_auth`` detector
already counts those against the key like typos.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vibexp.core.access import CredentialKind
from vibexp.core.client_address import address_literal
from vibexp.core.errors import AuthFailure
from vibexp.core.text import make_storable

__all__ = [
    "ACTION_LENGTH",
    "CLIENT_IP_LENGTH",
    "DISALLOWED_ADDRESS",
    "EXPIRED",
    "METHOD_LENGTH",
    "RETIRED_REASONS",
    "REVOKED",
    "ROUTE_LENGTH",
    "TOOL_TYPE_LENGTH",
    "TYPO",
    "Refusal",
    "UsageEvent",
]

#: The action log's column lengths (``key_actions``): an event's texts are cut to them when it is made.
METHOD_LENGTH = 16
ROUTE_LENGTH = 200
ACTION_LENGTH = 200
TOOL_TYPE_LENGTH = 32
CLIENT_IP_LENGTH = 64


@dataclass(slots=True)
class UsageEvent:
    #: The credential's id: an API key's, or an OAuth grant's when ``credential`` is ``CredentialKind.grant`` (ids
    #: are unique across both, so the detectors' per-credential state keys on it alone).
    key_id: str
    tenant_id: str
    at: datetime
    method: str
    route: str
    action: str
    status: int
    tool_type: str
    client_ip: str | None
    #: A personal key's owner (``Principal.owner_user_id``, cached with the key): the flush marks them seen in the
    #: account (``memberships.last_seen_at``); ``None`` for a service key. A grant's person.
    owner_user_id: str | None = None
    #: ``api_key`` or ``grant`` (an OAuth access token on ``/mcp/v1/connect``): where the flush counts the request
    #: and which column of the action log (``key_id`` / ``grant_id``) names the credential.
    credential: CredentialKind = CredentialKind.api_key

    @property
    def is_grant(self) -> bool:
        return self.credential is CredentialKind.grant

    def __post_init__(self) -> None:
        # Whatever the adapter passed (a client chose the MCP method or tool name, the address it claims): text
        # every database stores in these columns, so one request cannot fail the batch it is flushed with.
        self.method = make_storable(self.method, METHOD_LENGTH)
        self.route = make_storable(self.route, ROUTE_LENGTH)
        self.action = make_storable(self.action, ACTION_LENGTH)
        self.tool_type = make_storable(self.tool_type, TOOL_TYPE_LENGTH)
        self.client_ip = address_literal(self.client_ip)


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
