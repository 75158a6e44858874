"""import idempotence: a memory an import created carries its import key, unique per tenant

Revision ID: 0015_import_idempotence
Revises: 0014_alert_hardening
Create Date: 2026-12-06 21:30:00

``memories.import_key`` is the hex SHA-256 of a memory's ``[project, content]`` (``transfer.memory_key``), set only
on the memories an import creates and cleared when the memory's text or project changes, so concurrent imports of
one file insert each memory once (``INSERT … ON CONFLICT DO NOTHING`` on the unique index), whatever the number of
processes. Existing rows get NULL: only rows imported from now on are indexed, so duplicates already stored (by
REST, or by the concurrent imports this fixes) cannot break the index; they are kept, and an import treats them as
one memory, as before. NULLs are distinct in a unique index on both backends, so REST and MCP may still store a
memory twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_import_idempotence"
down_revision: str | None = "0014_alert_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, never batch mode: rebuilding memories on SQLite would drop its full-text triggers (0009).
    op.add_column("memories", sa.Column("import_key", sa.String(64), nullable=True))
    op.create_index("ux_memories_tenant_import_key", "memories", ["tenant_id", "import_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_memories_tenant_import_key", table_name="memories")
    op.drop_column("memories", "import_key")
