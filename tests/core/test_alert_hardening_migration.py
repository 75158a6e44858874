"""Migration 0014_alert_hardening on a database from before it (SQLite and PostgreSQL): ``failed_auth`` leaves every
stored ``auto_revoke_on``, and plaintext webhook secrets are sealed with the server key (and unsealed by the
downgrade)."""

from __future__ import annotations

import asyncio
import json

from alembic import command
from sqlalchemy import text

from helpers.databases import revision_before
from vibexp.core.db import create_engine
from vibexp.core.migrate import alembic_config, upgrade_async
from vibexp.core.secret_box import default_box

REVISION = "0014_alert_hardening"
#: The revision just before it, from alembic's own chain (not a literal that the next migration would make wrong).
BEFORE = revision_before(REVISION)
SECRET = "an-old-plaintext-webhook-secret"
TENANTS = {
    "00000000-0000-4000-8000-000000000141": (["failed_auth", "key_leaked"], SECRET),
    "00000000-0000-4000-8000-000000000142": (["failed_auth"], None),
    "00000000-0000-4000-8000-000000000143": (["retired_key_used"], None),
}


async def _rows(url: str) -> dict[str, tuple[list[str], str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, auto_revoke_on, alert_webhook_secret FROM tenants"))
            return {
                str(tenant_id): (json.loads(kinds) if isinstance(kinds, str) else kinds, secret)
                for tenant_id, kinds, secret in rows
            }
    finally:
        await engine.dispose()


async def test_failed_auth_is_dropped_and_secrets_are_sealed(empty_database_url: str) -> None:
    url = empty_database_url
    await upgrade_async(url, BEFORE)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for number, (tenant_id, (kinds, secret)) in enumerate(TENANTS.items()):
                await conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at,"
                        " auto_revoke_on, alert_webhook_url, alert_webhook_secret) VALUES (:id, :name, 'Old',"
                        " 'free', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :kinds, :url, :secret)"
                    ),
                    {
                        "id": tenant_id,
                        "name": f"old-{number}",
                        "kinds": json.dumps(kinds),
                        "url": "https://hooks.example.com/x" if secret else None,
                        "secret": secret,
                    },
                )
    finally:
        await engine.dispose()
    await upgrade_async(url)
    after = await _rows(url)
    assert {tenant_id: kinds for tenant_id, (kinds, _) in after.items()} == {
        "00000000-0000-4000-8000-000000000141": ["key_leaked"],
        "00000000-0000-4000-8000-000000000142": [],
        "00000000-0000-4000-8000-000000000143": ["retired_key_used"],
    }
    sealed = after["00000000-0000-4000-8000-000000000141"][1]
    assert sealed is not None and sealed.startswith("enc:v1:") and SECRET not in sealed
    assert default_box().open(sealed) == SECRET
    # The downgrade gives the previous release its plaintext back.
    await asyncio.to_thread(command.downgrade, alembic_config(url), BEFORE)
    assert (await _rows(url))["00000000-0000-4000-8000-000000000141"][1] == SECRET
