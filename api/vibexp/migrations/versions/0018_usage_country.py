"""usage country: each action's registered country, and the countries each key was used from (new_country)

Revision ID: 0018_usage_country
Revises: 0017_teams
Create Date: 2026-12-07 04:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_usage_country"
down_revision: str | None = "0017_teams"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column and a new table: a replica of the previous release neither reads nor needs them. Rows written
    # before have no country (their addresses are not looked up again).
    with op.batch_alter_table("key_actions") as batch:
        batch.add_column(sa.Column("country", sa.String(2), nullable=True))
    op.create_table(
        "key_countries",
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_key_countries_key_id_api_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_id", "country", name=op.f("pk_key_countries")),
    )


def downgrade() -> None:
    op.drop_table("key_countries")
    with op.batch_alter_table("key_actions") as batch:
        batch.drop_column("country")
