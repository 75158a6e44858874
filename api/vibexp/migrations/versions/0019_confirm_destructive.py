"""confirm destructive: a key whose destructive MCP tools ask the person first

Revision ID: 0019_confirm_destructive
Revises: 0018_usage_country
Create Date: 2026-12-07 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_confirm_destructive"
down_revision: str | None = "0018_usage_country"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a server default: every existing key, and a key a replica of the previous release
    # inserts during a rolling upgrade, asks nothing (as before).
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("confirm_destructive", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("confirm_destructive")
