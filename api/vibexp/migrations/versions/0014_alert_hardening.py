"""alert hardening: failed_auth no longer auto-revokes, webhook secrets encrypted at rest, the failed_auth bound's index

Revision ID: 0014_alert_hardening
Revises: 0013_key_delete
Create Date: 2026-12-06 21:30:00

* ``tenants.auto_revoke_on`` loses ``failed_auth``: anyone who knows a key's public display prefix can raise that
  alert without the key, so it may no longer revoke one (``vibexp.core.alerts.service.parse_auto_revoke_kinds``).
* ``tenants.alert_webhook_secret`` grows to 500 characters and every plaintext secret in it is sealed with the
  server key (``VIBEXP_SECRET_KEY`` of the process that migrates: the same as every replica's;
  ``vibexp.core.secret_box``). A replica of the previous release would sign with the sealed text, so upgrade
  the replicas right after (the chart's hook Job migrates before the new pods start).
* ``ix_alerts_key_id_kind_first_seen_at``: the failed_auth alerts a key opened in the past hour, by index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vibexp.core.config import Settings
from vibexp.core.secret_box import SecretBox, is_sealed

revision: str = "0014_alert_hardening"
down_revision: str | None = "0013_key_delete"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tenants = sa.table(
    "tenants",
    sa.column("id", sa.String),
    sa.column("auto_revoke_on", sa.JSON),
    sa.column("alert_webhook_secret", sa.String),
)


def _box() -> SecretBox:
    return SecretBox(Settings().secret_key)  # read now, from the migrating process's environment


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.alter_column(
            "alert_webhook_secret", existing_type=sa.String(200), type_=sa.String(500), existing_nullable=True
        )
    op.create_index("ix_alerts_key_id_kind_first_seen_at", "alerts", ["key_id", "kind", "first_seen_at"])
    bind = op.get_bind()
    box = _box()
    rows = bind.execute(sa.select(_tenants.c.id, _tenants.c.auto_revoke_on, _tenants.c.alert_webhook_secret)).all()
    for tenant_id, kinds, secret in rows:
        values: dict[str, object] = {}
        if kinds and "failed_auth" in kinds:
            values["auto_revoke_on"] = [kind for kind in kinds if kind != "failed_auth"]
        if secret is not None and not is_sealed(secret):
            values["alert_webhook_secret"] = box.seal(secret)
        if values:
            bind.execute(sa.update(_tenants).where(_tenants.c.id == tenant_id).values(**values))


def downgrade() -> None:
    bind = op.get_bind()
    box = _box()
    rows = bind.execute(sa.select(_tenants.c.id, _tenants.c.alert_webhook_secret)).all()
    for tenant_id, secret in rows:
        if secret is not None and is_sealed(secret):
            # A secret sealed under another key cannot be recovered: cleared (set it again after the downgrade).
            bind.execute(
                sa.update(_tenants).where(_tenants.c.id == tenant_id).values(alert_webhook_secret=box.open(secret))
            )
    op.drop_index("ix_alerts_key_id_kind_first_seen_at", table_name="alerts")
    with op.batch_alter_table("tenants") as batch:
        batch.alter_column(
            "alert_webhook_secret", existing_type=sa.String(500), type_=sa.String(200), existing_nullable=True
        )
