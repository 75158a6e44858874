"""hardening: sign-in attempt buckets, signed-out sessions, one-time key flashes

Revision ID: 0002_hardening
Revises: 0001
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_hardening"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_buckets",
        sa.Column("bucket", sa.String(length=120), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_sign_in_buckets")),
    )
    op.create_table(
        "revoked_sessions",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_revoked_sessions")),
    )
    op.create_index(op.f("ix_revoked_sessions_expires_at"), "revoked_sessions", ["expires_at"], unique=False)
    op.create_table(
        "key_flashes",
        sa.Column("id", sa.String(length=43), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("rotated_id", sa.String(length=36), nullable=True),
        sa.Column("grace_seconds", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_flashes")),
    )
    op.create_index(op.f("ix_key_flashes_expires_at"), "key_flashes", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_key_flashes_expires_at"), table_name="key_flashes")
    op.drop_table("key_flashes")
    op.drop_index(op.f("ix_revoked_sessions_expires_at"), table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
    op.drop_table("sign_in_buckets")
