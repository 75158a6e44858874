"""mcp answers: a handshake-era client's answer to a confirmation, relayed to the replica whose call is waiting

Revision ID: 0024_mcp_answers
Revises: 0023_grant_confirm
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_mcp_answers"
down_revision: str | None = "0023_grant_confirm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table only: a replica of the previous release reads and writes everything as before.
    op.create_table(
        "mcp_answers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("session_nonce", sa.String(43), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
    )
    op.create_index("ix_mcp_answers_key_id", "mcp_answers", ["key_id"])
    op.create_index("ix_mcp_answers_expires_at", "mcp_answers", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_mcp_answers_expires_at", table_name="mcp_answers")
    op.drop_index("ix_mcp_answers_key_id", table_name="mcp_answers")
    op.drop_table("mcp_answers")
