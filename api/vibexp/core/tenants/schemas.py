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
    display_name: StorableText | None = Field(default=None, max_length=200)
    tier: Tier | None = None
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=100_000_000)
    suspended: bool | None = None
    # Alert settings (#16), named like the columns. Their validation (URL, working hours) belongs to the alerts
    # service; these are the minimal fields the operator sets (spec.alerts).
    alert_webhook_url: str | None = Field(default=None, max_length=2000)
    alert_webhook_secret: str | None = Field(default=None, max_length=200)
    working_hours: str | None = Field(default=None, max_length=100)
    auto_revoke_on: list[str] | None = None


class TenantRead(TenantBase):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    hourly_limit: int
    created_at: datetime
