"""content changes: index prompts and artifacts by updated_at, which the MCP change feed polls every 0.25 s

Revision ID: 0020_content_changes
Revises: 0019_confirm_destructive
Create Date: 2026-12-07 05:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_content_changes"
down_revision: str | None = "0019_confirm_destructive"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Indexes only: a replica of the previous release reads and writes the tables as before.
    op.create_index("ix_prompts_updated_at", "prompts", ["updated_at"])
    op.create_index("ix_artifacts_updated_at", "artifacts", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_artifacts_updated_at", table_name="artifacts")
    op.drop_index("ix_prompts_updated_at", table_name="prompts")
