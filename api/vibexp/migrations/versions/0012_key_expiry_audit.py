"""key expiry audit: when key.expired was recorded for a key (once per key, by the key policy sweep)

Revision ID: 0012_key_expiry_audit
Revises: 0011_key_permissions
Create Date: 2026-12-04 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_key_expiry_audit"
down_revision: str | None = "0011_key_permissions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN: a replica of the previous release neither reads nor writes it.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expiry_recorded_at", sa.DateTime(timezone=True), nullable=True))
    # Keys that expired before this release count as recorded, without an event: the trail would date their expiry
    # at the upgrade. (CURRENT_TIMESTAMP is UTC on both backends; SQLite's text compares in the same order.)
    op.execute(
        "UPDATE api_keys SET expiry_recorded_at = expires_at"
        " WHERE expires_at IS NOT NULL AND expires_at <= CURRENT_TIMESTAMP"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expiry_recorded_at")
