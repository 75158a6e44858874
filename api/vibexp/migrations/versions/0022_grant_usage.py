"""grant usage: the action log and alerts may name an OAuth grant instead of an API key; where grants were used from

Revision ID: 0022_grant_usage
Revises: 0021_oauth
Create Date: 2026-12-07 12:00:00

* ``key_actions`` and ``alerts``: ``key_id`` becomes nullable, a nullable ``grant_id`` references ``oauth_grants``
  (ON DELETE CASCADE, as ``key_id`` does ``api_keys``), and a CHECK wants exactly one of the two. Existing rows all
  name a key, so they pass. ``alerts`` gets ``uq_alerts_open_grant_kind`` (one open alert per grant and kind), the
  twin of ``uq_alerts_open_key_kind``.
* ``grant_networks`` and ``grant_countries``: the twins of ``key_networks`` and ``key_countries`` for grants (their
  primary key stays (credential, place) with a real foreign key: no surrogate key, no rebuilt key tables).

A replica of the previous release keeps working: it only ever writes rows that name a key. The downgrade drops the
rows that name a grant (the old schema cannot hold them), then the columns and tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_grant_usage"
down_revision: str | None = "0021_oauth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_CREDENTIAL = "(key_id IS NULL) <> (grant_id IS NULL)"
_OPEN = sa.text("status = 'open'")


def _credential_columns(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.alter_column("key_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("grant_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            op.f(f"fk_{table}_grant_id_oauth_grants"), "oauth_grants", ["grant_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_check_constraint(op.f(f"ck_{table}_one_credential"), ONE_CREDENTIAL)


def _place_table(name: str, column: str, length: int) -> None:
    op.create_table(
        name,
        sa.Column("grant_id", sa.String(36), nullable=False),
        sa.Column(column, sa.String(length), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["oauth_grants.id"], name=op.f(f"fk_{name}_grant_id_oauth_grants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("grant_id", column, name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    # The partial unique index is dropped around the rebuild and made again (a SQLite table rebuild need not carry
    # an index's WHERE clause over).
    op.drop_index("uq_alerts_open_key_kind", table_name="alerts")
    _credential_columns("key_actions")
    _credential_columns("alerts")
    op.create_index("ix_key_actions_grant_id", "key_actions", ["grant_id"])
    for column in ("key_id", "grant_id"):
        op.create_index(
            f"uq_alerts_open_{column.removesuffix('_id')}_kind",
            "alerts",
            [column, "kind"],
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )
    _place_table("grant_networks", "network", 64)
    _place_table("grant_countries", "country", 2)


def downgrade() -> None:
    op.drop_table("grant_countries")
    op.drop_table("grant_networks")
    op.execute("DELETE FROM key_actions WHERE grant_id IS NOT NULL")
    op.execute("DELETE FROM alerts WHERE grant_id IS NOT NULL")  # their webhook deliveries go with them (cascade)
    op.execute(
        "DELETE FROM webhook_deliveries WHERE alert_id NOT IN (SELECT id FROM alerts)"
    )  # SQLite migrates with its foreign keys off: no cascade there
    op.drop_index("uq_alerts_open_grant_kind", table_name="alerts")
    op.drop_index("uq_alerts_open_key_kind", table_name="alerts")
    op.drop_index("ix_key_actions_grant_id", table_name="key_actions")
    for table in ("alerts", "key_actions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_one_credential"), type_="check")
            batch.drop_constraint(op.f(f"fk_{table}_grant_id_oauth_grants"), type_="foreignkey")
            batch.drop_column("grant_id")
            batch.alter_column("key_id", existing_type=sa.String(36), nullable=False)
    op.create_index(
        "uq_alerts_open_key_kind", "alerts", ["key_id", "kind"], unique=True, sqlite_where=_OPEN, postgresql_where=_OPEN
    )
