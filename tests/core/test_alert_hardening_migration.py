"""Migration 0014_alert_hardening on a database from before it (SQLite and PostgreSQL): ``failed_auth`` leaves every
stored ``auto_revoke_on``, and plaintext webhook secrets are sealed with the server key (and unsealed by the
downgrade)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from helpers.databases import create_postgres_database, drop_postgres_database, sqlite_url
from vibexp.core.db import create_engine
from vibexp.core.migrate import alembic_config, upgrade_async
from vibexp.core.secret_box import default_box

REVISION = "0014_alert_hardening"
#: The revision just before it, from alembic's own chain (not a literal that the next migration would make wrong).
BEFORE = str(ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_revision(REVISION).down_revision)
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


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_failed_auth_is_dropped_and_secrets_are_sealed(kind: str, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path) if kind == "sqlite" else await create_postgres_database()
    try:
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
    finally:
        if kind == "postgres":
            await drop_postgres_database(url)
