"""Stored content: prompts, artifacts and memories, each owned by one tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.ids import new_id

__all__ = ["Artifact", "Memory", "Prompt"]


class _Content:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    #: Incremented on each update; the ETag, checked against If-Match.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Prompt(_Content, Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000), default="")
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)


class Artifact(_Content, Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("tenant_id", "project", "slug"),)

    project: Mapped[str] = mapped_column(String(128))
    slug: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(String(2000), default="")
    content: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(127), default="text/markdown")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)


class Memory(_Content, Base):
    __tablename__ = "memories"
    # `?project=` pages through one project's memories in id order (migration 0008_memory_project).
    __table_args__ = (Index("ix_memories_tenant_project_id", "tenant_id", "project", "id"),)

    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Optional: a memory may belong to one project (same names as artifact projects) or to none.
    project: Mapped[str | None] = mapped_column(String(128), default=None)
