from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from vibexp.core.access import ScopeList
from vibexp.core.cidrs import CidrList
from vibexp.core.text import StorableText

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyRead",
    "ApiKeyRotate",
    "ApiKeyUpdate",
    "KeyOwner",
    "KeyUsageRead",
    "UsageAction",
]

#: Longest grace period a rotation may keep the old key alive: 30 days.
MAX_GRACE_SECONDS = 30 * 24 * 3600


def _as_utc(value: datetime) -> datetime:
    """Normalise to UTC here, so an instant no database can hold (past year 9999 in UTC) is a 422, not a 500."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


#: An RFC 3339 instant with an explicit offset (a naive time would be ambiguous), as UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class ApiKeyBase(BaseModel):
    name: StorableText = Field(
        min_length=1, max_length=200, description='Descriptive name, e.g. "Work Laptop - Cursor"'
    )
    description: StorableText = Field(default="", max_length=2000, description="Optional notes about usage")


_SCOPES = (
    "What the key may do: prompts|artifacts|memories|keys:read|write, account:read, audit:read, alerts:write "
    "(acknowledge alerts; includes audit:read), read (every :read) or * (full access). Omitted: the calling key's "
    "own scopes"
)
_CIDRS = "IPv4/IPv6 networks the key may be used from (none: anywhere). Omitted: the calling key's own"
_EXPIRES = "Expiry (RFC 3339, in the future). Omitted: the calling key's expiry, or the account's maximum key lifetime"


class ApiKeyCreate(ApiKeyBase):
    scopes: ScopeList | None = Field(default=None, description=_SCOPES)
    allowed_cidrs: CidrList | None = Field(default=None, description=_CIDRS)
    expires_at: UtcDatetime | None = Field(default=None, description=_EXPIRES)
    service: bool = Field(
        default=False,
        description="A service key (owned by no person; admins and owners only). Otherwise a personal key's new key "
        "is its owner's, and a service key's new key is a service key",
    )


class KeyOwner(BaseModel):
    user_id: str
    email: str


class ApiKeyUpdate(BaseModel):
    name: StorableText | None = Field(default=None, min_length=1, max_length=200)
    description: StorableText | None = Field(default=None, max_length=2000)


class ApiKeyRotate(BaseModel):
    grace_period_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="Seconds the old key keeps working after rotation (0: revoked at once)",
    )
    scopes: ScopeList | None = Field(default=None, description="The new key's scopes. Omitted: the old key's")
    allowed_cidrs: CidrList | None = Field(default=None, description="The new key's networks. Omitted: the old key's")
    expires_at: UtcDatetime | None = Field(
        default=None,
        description="The new key's expiry. Omitted: the old key's (capped by the account's maximum key lifetime "
        "and the calling key's expiry). Earlier shortens it; later only within those",
    )


class ApiKeyRead(ApiKeyBase):
    model_config = ConfigDict(from_attributes=True)

    id: str
    prefix: str = Field(description="'vib_' and the first 8 hex characters of the key")
    status: str = Field(description="active, suspended (refused while a policy forbids it) or revoked")
    created_at: datetime
    last_used_at: datetime | None
    request_count: int
    tool_type: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    deleted_at: datetime | None = Field(
        default=None, description="When the revoked key was deleted (only in the answer to the DELETE that did it)"
    )
    source: str
    scopes: list[str] = Field(description="What the key may do; * is full access")
    allowed_cidrs: list[str] = Field(description="Networks the key may be used from; empty: anywhere")
    owner: KeyOwner | None = Field(
        default=None,
        description="The person the key belongs to (it never acts wider than their role); null: a service key",
    )


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The API key. Shown only in this response: copy it now.")


class UsageAction(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    action: str
    method: str
    route: str
    status: int
    tool_type: str
    client_ip: str | None


class KeyUsageRead(BaseModel):
    key_id: str
    request_count: int
    last_used_at: datetime | None
    tool_type: str | None
    last_ip: str | None
    actions: list[UsageAction]
