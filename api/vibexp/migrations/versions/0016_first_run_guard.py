"""first-run guard: the single row that exactly one first-run setup may insert (across replicas)

Revision ID: 0016_first_run_guard
Revises: 0015_import_idempotence
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_first_run_guard"
down_revision: str | None = "0015_import_idempotence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table: a replica of the previous release never reads or writes it.
    op.create_table(
        "first_run_claims",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_first_run_claims_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_first_run_claims")),
    )
    # A database that already has a user is past its first run: claim it, so no setup can ever succeed there.
    op.execute(
        "INSERT INTO first_run_claims (id, claimed_at) SELECT 1, CURRENT_TIMESTAMP WHERE EXISTS (SELECT 1 FROM users)"
    )


def downgrade() -> None:
    op.drop_table("first_run_claims")
