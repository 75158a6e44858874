"""grant confirm: a connected app (OAuth grant) whose destructive MCP tools ask the person first

Revision ID: 0023_grant_confirm
Revises: 0022_grant_usage
Create Date: 2026-12-07 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_grant_confirm"
down_revision: str | None = "0022_grant_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a server default: every existing grant, and a grant a replica of the previous release
    # inserts during a rolling upgrade, asks nothing (as before).
    with op.batch_alter_table("oauth_grants") as batch:
        batch.add_column(sa.Column("confirm_destructive", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("oauth_grants") as batch:
        batch.drop_column("confirm_destructive")
