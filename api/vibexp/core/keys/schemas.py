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
    "ClientUse",
    "CountryCount",
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
_CONFIRM = (
    "Destructive MCP tools (delete_*, overwriting update_* and save_artifact) ask the person to confirm, by form "
    "elicitation, and do nothing unless accepted; MCP clients that cannot be asked do not see them"
)
_EXPIRES = "Expiry (RFC 3339, in the future). Omitted: the calling key's expiry, or the account's maximum key lifetime"


class ApiKeyCreate(ApiKeyBase):
    scopes: ScopeList | None = Field(default=None, description=_SCOPES)
    allowed_cidrs: CidrList | None = Field(default=None, description=_CIDRS)
    expires_at: UtcDatetime | None = Field(default=None, description=_EXPIRES)
    confirm_destructive: bool = Field(default=False, description=_CONFIRM)
    service: bool = Field(
        default=False,
        description="A service key (owned by no person; admins and owners only). Otherwise a personal key's new key "
        "is its owner's, and a service key's new key is a service key",
    )


class KeyOwner(BaseModel):
    user_id: str
    email: str


class ApiKeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText | None = Field(default=None, min_length=1, max_length=200)
    description: StorableText | None = Field(default=None, max_length=2000)
    confirm_destructive: bool | None = Field(default=None, description=_CONFIRM + ". Omitted: unchanged")


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
    confirm_destructive: bool | None = Field(default=None, description=_CONFIRM + ". Omitted: the old key's")


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
    confirm_destructive: bool = Field(default=False, description=_CONFIRM)
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
    country: str | None = Field(
        default=None, description="The client address's registered country (ISO 3166-1 alpha-2); none if private"
    )


class CountryCount(BaseModel):
    """A registered country a key (or the account) was used from, within the action log's retention."""

    country: str = Field(description="ISO 3166-1 alpha-2, from the registries' data (where the address is registered)")
    requests: int
    last_used_at: datetime


class ClientUse(BaseModel):
    tool_type: str = Field(description="claude_code, claude_desktop, cursor, vscode, mcp_inspector, curl, … or other")
    requests: int = Field(description="Requests by this client in the action log's retention period")
    last_used_at: datetime


class KeyUsageRead(BaseModel):
    key_id: str
    request_count: int
    last_used_at: datetime | None
    tool_type: str | None = Field(description="The client of the key's most recent request")
    last_ip: str | None
    clients: list[ClientUse] = Field(
        default_factory=list, description="Every client that used the key (retention period), most recent first"
    )
    countries: list[CountryCount] = Field(
        default_factory=list,
        description="Countries the key was used from (action log, most requests first); private addresses have none",
    )
    actions: list[UsageAction] = Field(
        description="What the key did, newest first: REST requests, MCP tool calls and prompt/resource reads (not "
        "MCP protocol set-up such as initialize, notifications or listings)"
    )
