"""security: keys made before the checksum are flagged; the audit trail

Revision ID: 0005_security
Revises: 0002_hardening
Create Date: 2026-12-02 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_security"
down_revision: str | None = "0002_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every key that exists now was made without a checksum: the server default marks them all.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("legacy_format", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("legacy_format")
