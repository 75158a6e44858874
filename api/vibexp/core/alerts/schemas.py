"""Alerts as REST and the dashboard show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vibexp.core.alerts.models import AlertKind, AlertStatus
from vibexp.core.keys.schemas import KeyOwner

__all__ = ["AlertCount", "AlertCredential", "AlertRead"]


class AlertCredential(BaseModel):
    kind: Literal["api_key", "grant"] = Field(description="api_key, or grant (an OAuth connected app)")
    id: str = Field(description="The key's id, or the grant's")


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: AlertKind
    key_id: str | None = Field(description="The API key the alert is about; null when it is about an OAuth grant")
    grant_id: str | None = Field(
        default=None, description="The OAuth grant (connected app) the alert is about; null for a key's alert"
    )
    credential: AlertCredential = Field(description="Which credential the alert is about: an API key or a grant")
    status: AlertStatus
    first_seen_at: datetime = Field(description="When it was first noticed (the alert opened)")
    last_seen_at: datetime = Field(description="When it was last noticed while open")
    count: int = Field(description="How many times it was noticed while open, the first included")
    details: dict[str, Any] = Field(description="What was seen; auto_revoked: true when auto_revoke_on revoked the key")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    owner: KeyOwner | None = Field(
        default=None,
        description="The person the alert's credential belongs to (the key's owner, the grant's person); null: a "
        "service key",
    )


class AlertCount(BaseModel):
    open: int
