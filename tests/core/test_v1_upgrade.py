"""Upgrading a v1 database (migration ``0001``) with content in it to head: ranked search finds the old rows (word
forms included), each old prompt has its one version with its content (numbered as the row was: 1 for a prompt
never edited), and the export has all of them. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

from helpers.factories import make_key
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade_async

V1 = "0001"
TENANT = "00000000-0000-4000-8000-0000000001a0"
OTHER = "00000000-0000-4000-8000-0000000001a1"
PROMPTS = [  # id, tenant, name, content, version, tags
    ("00000000-0000-4000-8000-0000000001b1", TENANT, "review", "Reviewing pull requests carefully", 1, '["code"]'),
    ("00000000-0000-4000-8000-0000000001b2", TENANT, "summary", "Summarise the meeting notes", 1, "[]"),
    ("00000000-0000-4000-8000-0000000001b3", TENANT, "edited", "Edited in place three times", 3, "[]"),
    ("00000000-0000-4000-8000-0000000001b4", OTHER, "review", "Another tenant reviewing", 1, "[]"),
]
MEMORIES = [  # id, tenant, content, tags
    ("00000000-0000-4000-8000-0000000001c1", TENANT, "The user prefers tabs over spaces", '["style"]'),
    ("00000000-0000-4000-8000-0000000001c2", TENANT, "Deploys happen on Fridays", "[]"),
    ("00000000-0000-4000-8000-0000000001c3", OTHER, "Another tenant prefers spaces", "[]"),
]
ARTIFACT = ("00000000-0000-4000-8000-0000000001d1", "web", "plan", "Release plan", "Steps for releasing the website")


async def _seed_v1(url: str) -> None:
    """Content as v1 wrote it: the 0001 schema, raw SQL (no model of today's code involved)."""
    await upgrade_async(url, V1)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for tenant_id, name in ((TENANT, "old"), (OTHER, "other")):
                await conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at)"
                        " VALUES (:id, :name, :name, 'free', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": tenant_id, "name": name},
                )
            for prompt_id, tenant_id, name, content, version, tags in PROMPTS:
                await conn.execute(
                    text(
                        "INSERT INTO prompts (id, tenant_id, name, description, content, tags, version, created_at,"
                        " updated_at) VALUES (:id, :t, :name, 'old prompt', :content, :tags, :version,"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "id": prompt_id,
                        "t": tenant_id,
                        "name": name,
                        "content": content,
                        "tags": tags,
                        "version": version,
                    },
                )
            for memory_id, tenant_id, content, tags in MEMORIES:
                await conn.execute(
                    text(
                        "INSERT INTO memories (id, tenant_id, content, tags, version, created_at, updated_at)"
                        " VALUES (:id, :t, :content, :tags, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": memory_id, "t": tenant_id, "content": content, "tags": tags},
                )
            artifact_id, project, slug, title, content = ARTIFACT
            await conn.execute(
                text(
                    "INSERT INTO artifacts (id, tenant_id, project, slug, title, description, content, content_type,"
                    " tags, version, created_at, updated_at) VALUES (:id, :t, :project, :slug, :title, '', :content,"
                    " 'text/markdown', '[]', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": artifact_id, "t": TENANT, "project": project, "slug": slug, "title": title, "content": content},
            )
    finally:
        await engine.dispose()


async def _search(client: httpx.AsyncClient, headers: dict[str, str], kind: str, q: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/{kind}", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    assert all(isinstance(item["score"], float) for item in items), items
    return items


async def test_v1_content_is_searchable_versioned_and_exported_after_the_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    await _seed_v1(url)
    await upgrade_async(url)  # to head
    engine = create_engine(url)
    try:
        key = await make_key(create_session_factory(engine), tenant_id=TENANT)
    finally:
        await engine.dispose()

    app = create_app(ApiSettings(database_url=url, environment="test", auto_migrate=False))
    headers = {"Authorization": f"Bearer {key}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # Ranked search over rows that predate the search index; word forms match; other tenants stay out.
            found = await _search(client, headers, "prompts", "review")
            assert [p["id"] for p in found] == [PROMPTS[0][0]]
            assert [p["name"] for p in await _search(client, headers, "prompts", "meeting note")] == ["summary"]
            memories = await _search(client, headers, "memories", "prefer tab")
            assert [m["content"] for m in memories] == [MEMORIES[0][2]]
            assert [m["id"] for m in await _search(client, headers, "memories", "deploy friday")] == [MEMORIES[1][0]]
            assert await _search(client, headers, "memories", "another") == []
            assert [a["slug"] for a in await _search(client, headers, "artifacts", "release")] == ["plan"]

            # Each old prompt has exactly one version: its content, numbered as its row.
            for prompt_id, tenant_id, name, content, version, tags in PROMPTS:
                if tenant_id != TENANT:
                    continue
                listed = await client.get(f"/api/v1/prompts/{prompt_id}/versions", headers=headers)
                assert listed.status_code == 200, listed.text
                assert [(v["version"], v["name"], v["content"], v["tags"]) for v in listed.json()["items"]] == [
                    (version, name, content, json.loads(tags))
                ]
                latest = await client.get(f"/api/v1/prompts/{prompt_id}", headers=headers)
                assert latest.headers["etag"] == f'"{version}"'

            # The export has every old row of the tenant, prompts with their one version.
            exported = await client.get("/api/v1/export", headers=headers)
            assert exported.status_code == 200, exported.text
            lines = [json.loads(line) for line in exported.text.split("\n") if line]
            prompts = {line["name"]: line for line in lines if line["type"] == "prompt"}
            assert set(prompts) == {"review", "summary", "edited"}
            assert [(v["version"], v["content"]) for v in prompts["edited"]["versions"]] == [
                (3, "Edited in place three times")
            ]
            assert [(v["version"], v["content"]) for v in prompts["review"]["versions"]] == [
                (1, "Reviewing pull requests carefully")
            ]
            assert sorted(line["content"] for line in lines if line["type"] == "memory") == sorted(
                content for _, tenant_id, content, _ in MEMORIES if tenant_id == TENANT
            )
            assert [line["slug"] for line in lines if line["type"] == "artifact"] == ["plan"]
            assert all(line["project"] is None for line in lines if line["type"] == "memory")
