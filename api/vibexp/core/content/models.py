"""Stored content: prompts, artifacts and memories, each owned by one tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from vibexp.core.clock import utcnow
from vibexp.core.db import Base, UTCDateTime
from vibexp.core.ids import new_id

__all__ = ["Artifact", "Memory", "Prompt"]


def _postgres_search_indexes(table: str) -> tuple[Index, Index]:
    """The PostgreSQL-only indexes of migration 0009_content_search: GIN on the generated ``search_vector`` column
    (created by the migration and deliberately not mapped: SQLite has no such column, search goes through FTS5
    there) and GIN on ``tags::jsonb`` for ``?tag=``."""
    return (
        Index(f"ix_{table}_search_vector", text("search_vector"), postgresql_using="gin").ddl_if(dialect="postgresql"),
        Index(f"ix_{table}_tags", text("(tags::jsonb) jsonb_path_ops"), postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
    )


class _Content:
    # Plain (unmapped) annotations such as ``score`` are ordinary Python attributes, not columns.
    __allow_unmapped__ = True

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    #: Indexed as (tenant_id, id) in each table's __table_args__ (migration 0009_content_search): every list filters
    #: by tenant and orders by id, and a tenant_id-only index made PostgreSQL sort all of a tenant's rows per page.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: Incremented on each update; the ETag, checked against If-Match.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Relevance of this object in the ranked search (``q=``) that loaded it; not stored, None otherwise.
    score: float | None = None


class Prompt(_Content, Base):
    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_prompts_tenant_id_id", "tenant_id", "id"),
        # The change feed's poll (``vibexp.core.content.changes``) reads recent rows (migration 0020_content_changes).
        Index("ix_prompts_updated_at", "updated_at"),
        *_postgres_search_indexes("prompts"),
    )

    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000), default="")
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)


class Artifact(_Content, Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "project", "slug"),
        Index("ix_artifacts_tenant_id_id", "tenant_id", "id"),
        Index("ix_artifacts_tenant_id_project_id", "tenant_id", "project", "id"),
        Index("ix_artifacts_updated_at", "updated_at"),  # the change feed's poll, as prompts
        *_postgres_search_indexes("artifacts"),
    )

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
    __table_args__ = (
        Index("ix_memories_tenant_id_id", "tenant_id", "id"),
        Index("ix_memories_tenant_project_id", "tenant_id", "project", "id"),
        # Concurrent imports of one file insert each memory once (migration 0015_import_idempotence).
        Index("ux_memories_tenant_import_key", "tenant_id", "import_key", unique=True),
        *_postgres_search_indexes("memories"),
    )

    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Optional: a memory may belong to one project (same names as artifact projects) or to none.
    project: Mapped[str | None] = mapped_column(String(128), default=None)
    #: Set on a memory an import created: the hex ``transfer.memory_key`` of its project and text, unique per tenant
    #: (NULLs are distinct, so REST and MCP may store one text twice). Cleared when the text or project changes.
    import_key: Mapped[str | None] = mapped_column(String(64), default=None)
