"""key permissions: scopes and allowed CIDRs per key, the tenant's key policy

Revision ID: 0011_key_permissions
Revises: 0010_alerts
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_key_permissions"
down_revision: str | None = "0010_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs with server defaults: every existing key keeps full access ("*") from anywhere, and a key a
    # replica of the previous release inserts during a rolling upgrade gets the same.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON(), server_default=sa.text("'[\"*\"]'"), nullable=False))
        batch.add_column(sa.Column("allowed_cidrs", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("max_key_lifetime_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("revoke_unused_after_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("revoke_unused_after_days")
        batch.drop_column("max_key_lifetime_days")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("allowed_cidrs")
        batch.drop_column("scopes")
