"""key delete: when a revoked key was deleted from the lists (a soft delete; its usage and audit history stay)

Revision ID: 0013_key_delete
Revises: 0012_key_expiry_audit
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_key_delete"
down_revision: str | None = "0012_key_expiry_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN: a replica of the previous release neither reads nor writes it (it would list a
    # deleted key again, as revoked, until it is upgraded: nothing it shows works).
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("deleted_at")
