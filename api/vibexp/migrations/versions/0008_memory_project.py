"""memories per project: a nullable project column and the index its filter uses

Revision ID: 0008_memory_project
Revises: 0007_prompt_versions
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_memory_project"
down_revision: str | None = "0007_prompt_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: every memory that exists now belongs to no project, and stays listed without a filter.
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("project", sa.String(length=128), nullable=True))
    # `?project=` lists a tenant's memories of one project in id order (keyset pages): this index answers it.
    op.create_index("ix_memories_tenant_project_id", "memories", ["tenant_id", "project", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_memories_tenant_project_id", table_name="memories")
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("project")
