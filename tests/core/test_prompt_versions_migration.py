"""Migration 0007_prompt_versions on a database with data in it: every existing prompt gets one version row (its
current content at its current version), served by ``GET /prompts/{id}?version=n`` afterwards. Both databases."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from helpers.factories import make_key
from helpers.migrations import insert_tenant
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade_async

TENANT = "00000000-0000-4000-8000-00000000000a"
PROMPTS = [
    ("00000000-0000-4000-8000-0000000000b1", "fresh", "Hello {{who}}", 1, '["a"]'),
    ("00000000-0000-4000-8000-0000000000b2", "edited", "Edited five times", 5, "[]"),
]


async def _seed_at_0005(url: str) -> None:
    await upgrade_async(url, "0005_security")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await insert_tenant(conn, TENANT, "old")
            for prompt_id, name, content, version, tags in PROMPTS:
                await conn.execute(
                    text(
                        "INSERT INTO prompts (id, tenant_id, name, description, content, tags, version, created_at,"
                        f" updated_at) VALUES ('{prompt_id}', '{TENANT}', '{name}', 'd', '{content}', '{tags}',"
                        f" {version}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    )
                )
    finally:
        await engine.dispose()


async def test_upgrade_backfills_one_version_per_prompt(empty_database_url: str) -> None:
    url = empty_database_url
    await _seed_at_0005(url)
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT prompt_id, version, tenant_id, name, content FROM prompt_versions ORDER BY name")
            )
            assert [tuple(r) for r in rows] == [
                (PROMPTS[1][0], 5, TENANT, "edited", "Edited five times"),
                (PROMPTS[0][0], 1, TENANT, "fresh", "Hello {{who}}"),
            ]
        key = await make_key(create_session_factory(engine), tenant_id=TENANT)
    finally:
        await engine.dispose()

    app = create_app(ApiSettings(database_url=url, environment="test", auto_migrate=False))
    headers = {"Authorization": f"Bearer {key}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            url_of = f"/api/v1/prompts/{PROMPTS[1][0]}"
            at_five = await client.get(url_of, params={"version": 5}, headers=headers)
            assert at_five.status_code == 200, at_five.text
            assert (at_five.json()["content"], at_five.headers["etag"]) == ("Edited five times", '"5"')
            fresh = await client.get(f"/api/v1/prompts/{PROMPTS[0][0]}/versions/1", headers=headers)
            assert fresh.status_code == 200 and fresh.json()["tags"] == ["a"]
            # Earlier content was never kept: only the current version exists.
            assert (await client.get(url_of, params={"version": 4}, headers=headers)).status_code == 404
            # The next write continues the numbering.
            updated = await client.put(url_of, json={"content": "six"}, headers=headers | {"If-Match": '"5"'})
            assert updated.status_code == 200 and updated.json()["version"] == 6
            listed = await client.get(f"{url_of}/versions", headers=headers)
            assert [v["version"] for v in listed.json()["items"]] == [6, 5]
