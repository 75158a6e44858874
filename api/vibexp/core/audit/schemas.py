"""The audit event as REST and the dashboard show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["AuditActorRead", "AuditEventRead", "AuditTargetRead"]


class AuditActorRead(BaseModel):
    type: str
    id: str | None
    name: str


class AuditTargetRead(BaseModel):
    type: str
    id: str | None
    name: str


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    at: datetime
    action: str
    actor: AuditActorRead
    target: AuditTargetRead | None
    client_ip: str | None
    user_agent: str | None
    details: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, value: Any) -> Any:
        """From the flat row (``actor_type``, ``target_id`` ...) to the nested JSON."""
        if isinstance(value, (BaseModel, dict)):
            return value
        target_type = value.target_type
        return {
            "id": value.id,
            "at": value.at,
            "action": value.action,
            "actor": {"type": value.actor_type, "id": value.actor_id, "name": value.actor_name},
            "target": None
            if target_type is None
            else {"type": target_type, "id": value.target_id, "name": value.target_name},
            "client_ip": value.client_ip,
            "user_agent": value.user_agent,
            "details": value.details,
        }
