"""Usage as REST shows it for an OAuth grant (a key's is ``keys.schemas.KeyUsageRead``: the same fields, by
credential)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from vibexp.core.keys.schemas import ClientUse, CountryCount, UsageAction

__all__ = ["GrantUsageRead"]


class GrantUsageRead(BaseModel):
    grant_id: str
    request_count: int
    last_used_at: datetime | None
    clients: list[ClientUse] = Field(
        default_factory=list,
        description="Every client (tool type) that used the grant (retention period), most recent first",
    )
    countries: list[CountryCount] = Field(
        default_factory=list, description="Countries the grant was used from (action log, most requests first)"
    )
    actions: list[UsageAction] = Field(
        description="What the connected app did, newest first: MCP tool calls and prompt/resource reads (not MCP "
        "protocol set-up)"
    )
