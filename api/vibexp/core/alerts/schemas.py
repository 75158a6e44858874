"""Alerts as REST and the dashboard show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vibexp.core.alerts.models import AlertKind, AlertStatus
from vibexp.core.keys.schemas import KeyOwner

__all__ = ["AlertCount", "AlertRead"]


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: AlertKind
    key_id: str
    status: AlertStatus
    first_seen_at: datetime = Field(description="When it was first noticed (the alert opened)")
    last_seen_at: datetime = Field(description="When it was last noticed while open")
    count: int = Field(description="How many times it was noticed while open, the first included")
    details: dict[str, Any] = Field(description="What was seen; auto_revoked: true when auto_revoke_on revoked the key")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    owner: KeyOwner | None = Field(
        default=None, description="The person the alert's key belongs to (as the key's owner); null: a service key"
    )


class AlertCount(BaseModel):
    open: int
