from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from vibexp.core.tenants.models import Tier
from vibexp.core.text import StorableText

__all__ = ["TENANT_NAME_PATTERN", "TenantCreate", "TenantRead", "TenantUpdate"]

#: Tenant names double as Kubernetes object names (VibeXPTenant), so they follow RFC 1123 labels.
TENANT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class TenantBase(BaseModel):
    display_name: StorableText = Field(default="", max_length=200)
    tier: Tier = Tier.free
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=100_000_000)
    suspended: bool = False


class TenantCreate(TenantBase):
    name: str = Field(pattern=TENANT_NAME_PATTERN, max_length=63)


class TenantUpdate(BaseModel):
    """The fields to change (unset ones stay). The alert settings are checked by
    ``vibexp.core.account.update_tenant`` (one clear ``InvalidInput`` each; see ``vibexp.core.alerts.settings``);
    ``None`` clears one."""

    display_name: StorableText | None = Field(default=None, max_length=200)
    tier: Tier | None = None
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=100_000_000)
    suspended: bool | None = None
    #: Where alerts are POSTed: http(s), not this server. Needs a secret (set now or before).
    alert_webhook_url: str | None = Field(default=None, max_length=10_000)
    #: Signs each delivery (HMAC-SHA256), 16 to 200 characters. Never shown or recorded again.
    alert_webhook_secret: str | None = Field(default=None, max_length=10_000)
    #: ``Mon-Fri 08:00-19:00 Europe/Berlin``: outside them, use of a key raises ``after_hours``. None or "": no hours.
    working_hours: str | None = Field(default=None, max_length=10_000)
    #: Alert kinds that revoke the key at once; None or []: none.
    auto_revoke_on: list[str] | None = Field(default=None, max_length=20)
    #: Key policy: a key made without an expiry expires after this many days, and none may expire later. None: no
    #: maximum.
    max_key_lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    #: Keys unused (never used, or not since) for this many days are revoked by the server. None: never.
    revoke_unused_after_days: int | None = Field(default=None, ge=1, le=3650)


class TenantRead(TenantBase):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    hourly_limit: int
    created_at: datetime
    max_key_lifetime_days: int | None = None
    revoke_unused_after_days: int | None = None
