from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.db import Base, UTCDateTime

__all__ = ["KeyAction"]


class KeyAction(Base):
    """One authenticated operation: the per-key action log behind the usage dashboard (kept for a retention period)."""

    __tablename__ = "key_actions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    method: Mapped[str] = mapped_column(String(16))
    #: Route template (``/api/v1/prompts/{id}``) or MCP method, never a raw path with ids or secrets.
    route: Mapped[str] = mapped_column(String(200))
    #: What was done: ``GET /api/v1/prompts/{id}`` or an MCP tool name such as ``save_memory``.
    action: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(Integer)
    tool_type: Mapped[str] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
