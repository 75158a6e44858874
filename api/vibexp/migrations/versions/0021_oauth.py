"""oauth: clients, authorization codes and grants (with their current token pair) for /mcp/v1/connect

Revision ID: 0021_oauth
Revises: 0020_content_changes
Create Date: 2026-12-07 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_oauth"
down_revision: str | None = "0020_content_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: a replica of the previous release reads and writes everything as before.
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.String(2048), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "oauth_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_id", sa.String(2048), sa.ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.Column("access_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("previous_refresh_hash", sa.String(64), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_count", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_index("ix_oauth_grants_tenant_id", "oauth_grants", ["tenant_id"])
    op.create_index("ix_oauth_grants_user_id", "oauth_grants", ["user_id"])
    op.create_index("ix_oauth_grants_client_id", "oauth_grants", ["client_id"])
    op.create_index("ix_oauth_grants_updated_at", "oauth_grants", ["updated_at"])
    op.create_index("ix_oauth_grants_previous_refresh_hash", "oauth_grants", ["previous_refresh_hash"])
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(36), sa.ForeignKey("oauth_grants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("resource", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_oauth_codes_grant_id", "oauth_codes", ["grant_id"])


def downgrade() -> None:
    op.drop_index("ix_oauth_codes_grant_id", table_name="oauth_codes")
    op.drop_table("oauth_codes")
    for column in ("previous_refresh_hash", "updated_at", "client_id", "user_id", "tenant_id"):
        op.drop_index(f"ix_oauth_grants_{column}", table_name="oauth_grants")
    op.drop_table("oauth_grants")
    op.drop_table("oauth_clients")
