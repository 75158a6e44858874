"""Ranked full-text search (vibexp.core.content.search) on both databases: word forms, ranking and score, every
write kept in step with the index, cursors over ranked pages, how a query string is read, and a v1 database with
data upgraded to the search schema."""

from __future__ import annotations

import asyncio
import random
import secrets

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.databases import POSTGRES_URL
from helpers.factories import TEST_ACTOR
from vibexp.core.content import schemas
from vibexp.core.content.models import Artifact, Memory, Prompt
from vibexp.core.content.search import MAX_QUERY_CHARS, MAX_WORDS, STOP_WORDS, query_words
from vibexp.core.content.service import artifacts, memories, prompts
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.errors import InvalidInput
from vibexp.core.migrate import alembic_config, upgrade_async
from vibexp.core.pagination import encode_cursor, encode_ranked_cursor
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate


async def _tenant_id(session: AsyncSession) -> str:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name=f"t-{secrets.token_hex(5)}"))
    return tenant.id


async def _memories(session: AsyncSession, tenant_id: str, *texts: str) -> list[str]:
    ids = []
    for content in texts:
        memory = await memories.create(session, tenant_id=tenant_id, data=schemas.MemoryCreate(content=content))
        ids.append(memory.id)
    return ids


async def _found(session: AsyncSession, tenant_id: str, q: str, **kwargs: object) -> list[str]:
    page = await memories.list(session, tenant_id=tenant_id, q=q, limit=200, **kwargs)  # type: ignore[arg-type]
    return [m.content for m in page.items]


# -- what a query string means ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("q", "words"),
    [
        ("running shoes", ["running", "shoes"]),
        ('"unbalanced', ["unbalanced"]),
        ('say "hi" there', ["say", "hi"]),  # "there" is a stop word
        ("cat*", ["cat"]),
        ("-excluded word", ["excluded", "word"]),
        ("x NEAR y", ["x", "NEAR", "y"]),
        ("NEAR(x y, 2)", ["NEAR", "x", "y", "2"]),
        ("AND OR NOT", []),  # English stop words, dropped on both databases
        ("The Only Way", ["Way"]),
        ("(x OR y) AND z", ["x", "y", "z"]),
        ("content:secret ^start {x y}", ["content", "secret", "start", "x", "y"]),
        ("snake_case 100%", ["snake", "case", "100"]),
        ("漢字 עברית café", ["漢字", "עברית", "café"]),
        ('*** "" -- () :', []),
        ("", []),
    ],
)
def test_a_query_is_its_words(q: str, words: list[str]) -> None:
    assert query_words(q) == words


def test_only_the_first_32_words_count() -> None:
    assert query_words(" ".join(f"w{i}" for i in range(100))) == [f"w{i}" for i in range(MAX_WORDS)]


def test_a_query_over_1000_characters_is_refused() -> None:
    assert len(query_words("a" * MAX_QUERY_CHARS)) == 1
    with pytest.raises(InvalidInput, match="at most 1000 characters"):
        query_words("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(InvalidInput, match="at most 1000 characters"):
        query_words("x " * 5_000)


# -- matching and ranking ---------------------------------------------------------------------------------------
async def test_word_forms_match(session: AsyncSession) -> None:
    tenant_id = await _tenant_id(session)
    await _memories(session, tenant_id, "She runs every morning", "Running late again", "Walked to work", "ran")
    assert sorted(await _found(session, tenant_id, "running")) == ["Running late again", "She runs every morning"]
    assert sorted(await _found(session, tenant_id, "RUN")) == ["Running late again", "She runs every morning"]
    assert await _found(session, tenant_id, "walking") == ["Walked to work"]


async def test_every_word_must_match_and_other_tenants_never(session: AsyncSession) -> None:
    tenant_id, other_id = await _tenant_id(session), await _tenant_id(session)
    await _memories(session, tenant_id, "alpha beta gamma", "alpha only here", "beta alone")
    await _memories(session, other_id, "alpha beta from the other tenant")
    assert await _found(session, tenant_id, "beta alpha") == ["alpha beta gamma"]
    assert await _found(session, tenant_id, "alpha, beta!") == ["alpha beta gamma"]
    assert await _found(session, tenant_id, "alpha missing") == []


async def test_best_first_with_a_score_and_plain_lists_without(session: AsyncSession) -> None:
    tenant_id = await _tenant_id(session)
    await _memories(
        session,
        tenant_id,
        "deploy once among many other words about something entirely unrelated to it",
        "deploy deploy deploy",
        "deploy the service",
    )
    page = await memories.list(session, tenant_id=tenant_id, q="deploy")
    assert page.items[0].content == "deploy deploy deploy"
    assert page.items[-1].content.startswith("deploy once")
    scores = [m.score for m in page.items]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert scores[0] > scores[-1]  # type: ignore[operator]
    assert schemas.MemoryRead.model_validate(page.items[0]).score == scores[0]
    plain = await memories.list(session, tenant_id=tenant_id)
    assert len(plain.items) == 3 and all(m.score is None for m in plain.items)


async def test_prompt_names_and_artifact_titles_weigh_more_than_content(session: AsyncSession) -> None:
    tenant_id = await _tenant_id(session)
    for name, content in [("notes", "talks about kubernetes once"), ("kubernetes", "a checklist"), ("x", "y")]:
        await prompts.create(session, tenant_id=tenant_id, data=schemas.PromptCreate(name=name, content=content))
    ranked = (await prompts.list(session, tenant_id=tenant_id, q="kubernetes")).items
    assert [p.name for p in ranked] == ["kubernetes", "notes"]
    for slug, title, content in [("a", "Plain", "the rollout plan"), ("b", "Rollout", "a plan"), ("c", "c", "d")]:
        data = schemas.ArtifactCreate(project="p", slug=slug, title=title, content=content, tags=[slug])
        await artifacts.create(session, tenant_id=tenant_id, data=data)
    found = (await artifacts.list(session, tenant_id=tenant_id, q="rollouts")).items
    assert [a.slug for a in found] == ["b", "a"]
    # q combines with the project and tag filters.
    assert [a.slug for a in (await artifacts.list(session, tenant_id=tenant_id, q="plan", tag="a")).items] == ["a"]
    assert (await artifacts.list(session, tenant_id=tenant_id, q="plan", filters={"project": "q"})).items == []


async def test_updates_and_deletes_keep_the_index_in_step(session: AsyncSession) -> None:
    tenant_id = await _tenant_id(session)
    (memory_id,) = await _memories(session, tenant_id, "the old wording")
    memory = await memories.get(session, tenant_id=tenant_id, id=memory_id)
    await memories.update(session, obj=memory, data=schemas.MemoryUpdate(content="entirely new phrasing"))
    assert await _found(session, tenant_id, "wording") == []
    assert await _found(session, tenant_id, "phrasing") == ["entirely new phrasing"]
    prompt = await prompts.create(session, tenant_id=tenant_id, data=schemas.PromptCreate(name="p", content="c"))
    await prompts.update(session, obj=prompt, data=schemas.PromptUpdate(description="migration helper"))
    assert [p.name for p in (await prompts.list(session, tenant_id=tenant_id, q="migrations")).items] == ["p"]
    await memories.delete(session, obj=memory, actor=TEST_ACTOR)
    await prompts.delete(session, obj=prompt, actor=TEST_ACTOR)
    assert await _found(session, tenant_id, "phrasing") == []
    assert (await prompts.list(session, tenant_id=tenant_id, q="migration")).items == []


_CAT = "near the cat and the dog"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('"', []),
        ('"unbalanced', []),
        ('"cat', [_CAT]),
        ("*", []),
        ("cat*", [_CAT]),
        ("NEAR", [_CAT]),
        ("NEAR(cat dog)", [_CAT]),
        ("NEAR(cat dog, 2)", []),  # "2" is a word like the others, and no memory has it
        ("-", []),
        ("-cat", [_CAT]),  # not a negation
        ("cat -dog", [_CAT]),
        ("AND OR NOT", []),  # stop words only: nothing to search for
        ("cat AND dog", [_CAT]),
        ("cat OR unrelated", []),  # not a disjunction: every word must match
        ("(", []),
        ("())", []),
        ("cat:dog", [_CAT]),
        ("^dog {cat}", [_CAT]),
        ('unrelated "(b', ["(a b) unrelated"]),
        ("x" * 999, []),
    ],
)
async def test_fts_syntax_is_plain_text(session: AsyncSession, q: str, expected: list[str]) -> None:
    tenant_id = await _tenant_id(session)
    await _memories(session, tenant_id, _CAT, "(a b) unrelated")
    assert await _found(session, tenant_id, q) == expected


# -- pages of ranked results ------------------------------------------------------------------------------------
async def test_ranked_pages_cover_every_hit_once_in_rank_order(session: AsyncSession) -> None:
    tenant_id = await _tenant_id(session)
    # Scores repeat (ties are broken by id) and differ (1 to 5 occurrences).
    await _memories(session, tenant_id, *[" ".join(["needle"] * (i % 5 + 1) + ["hay"] * i) for i in range(23)])
    await _memories(session, tenant_id, "hay only", "more hay")
    whole = await memories.list(session, tenant_id=tenant_id, q="needle", limit=200)
    assert len(whole.items) == 23 and whole.next_cursor is None
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = await memories.list(session, tenant_id=tenant_id, q="needle", limit=4, cursor=cursor)
        seen += [m.id for m in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [m.id for m in whole.items]


async def test_ranked_cursor_checks(session: AsyncSession) -> None:
    tenant_id = await _tenant_id(session)
    (memory_id,) = await _memories(session, tenant_id, "word")
    for bad in [encode_cursor(memory_id), encode_cursor("r:nan:x"), encode_cursor("r:inf:x"), encode_cursor("r:1.0:")]:
        with pytest.raises(InvalidInput, match="invalid cursor"):
            await memories.list(session, tenant_id=tenant_id, q="word", cursor=bad)
    after = await memories.list(session, tenant_id=tenant_id, q="word", cursor=encode_ranked_cursor(1e9, "0"))
    assert [m.id for m in after.items] == [memory_id]  # a lower score comes after
    last = await memories.list(session, tenant_id=tenant_id, q="word", cursor=encode_ranked_cursor(-1e9, "0"))
    assert last.items == []


# -- upgrading a database that has data -------------------------------------------------------------------------
_STAMP = "'2026-11-30 12:00:00.000000'"


async def _upgrade_with_data(url: str) -> None:
    await upgrade_async(url, "0005_security")
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tenants (id, name, display_name, tier, rate_limit_per_hour, suspended, created_at, "
                f"updated_at) VALUES ('t1', 'old-tenant', 'Old', 'free', NULL, false, {_STAMP}, {_STAMP})"
            )
        )
        common = f"'t1', 1, {_STAMP}, {_STAMP}"
        await conn.execute(
            text(
                "INSERT INTO memories (id, content, tags, tenant_id, version, created_at, updated_at) VALUES "
                f"('m1', 'The staging cluster runs on Tuesdays', '[\"ops\"]', {common}), "
                f"('m2', 'Unrelated note', '[]', {common})"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO prompts (id, name, description, content, tags, tenant_id, version, created_at, "
                f"updated_at) VALUES ('p1', 'reviewer', 'Reviews diffs', 'Check it', '[]', {common})"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO artifacts (id, project, slug, title, description, content, content_type, tags, "
                "tenant_id, version, created_at, updated_at) VALUES "
                f"('a1', 'infra', 'plan', 'Migration plan', '', 'Steps', 'text/markdown', '[]', {common})"
            )
        )
    await engine.dispose()
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            found = await memories.list(session, tenant_id="t1", q="running staging clusters")
            assert [m.id for m in found.items] == ["m1"] and found.items[0].score is not None
            assert [m.id for m in (await memories.list(session, tenant_id="t1", tag="ops")).items] == ["m1"]
            assert [p.id for p in (await prompts.list(session, tenant_id="t1", q="review")).items] == ["p1"]
            assert [a.id for a in (await artifacts.list(session, tenant_id="t1", q="migrations")).items] == ["a1"]
            # Written after the upgrade: indexed by the new triggers / generated column alike.
            await memories.create(session, tenant_id="t1", data=schemas.MemoryCreate(content="staging again"))
        async with session_scope(create_session_factory(engine)) as session:
            assert len((await memories.list(session, tenant_id="t1", q="staging")).items) == 2
    finally:
        await engine.dispose()
    # The downgrade undoes it all (the tenant_id indexes back), and upgrading again re-indexes every row.
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0005_security")
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            assert len((await memories.list(session, tenant_id="t1", q="staging")).items) == 2
    finally:
        await engine.dispose()


async def test_upgrade_from_0005_indexes_existing_rows(empty_database_url: str) -> None:
    await _upgrade_with_data(empty_database_url)


@pytest.mark.parametrize("model", [Memory, Prompt, Artifact])
async def test_migrated_indexes_match_the_models(database_url: str, model: type[Memory | Prompt | Artifact]) -> None:
    """The ORM's __table_args__ and the migrations (0009_content_search, 0015_import_idempotence) agree:
    (tenant_id, id) and friends, the import-key unique index, no tenant_id-only index."""
    engine = create_engine(database_url)
    table = model.__tablename__
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda sync: {i["name"] for i in inspect(sync).get_indexes(table)})
            dialect = conn.dialect.name
    finally:
        await engine.dispose()
    postgres_only = {f"ix_{table}_search_vector", f"ix_{table}_tags"}
    declared = {str(i.name) for i in model.__table__.indexes}
    expected = declared if dialect == "postgresql" else declared - postgres_only
    assert {name for name in found if name and name.startswith(("ix_", "ux_"))} == expected
    assert f"ix_{table}_tenant_id" not in found


async def test_the_stop_words_are_postgresqls() -> None:
    """Every word of STOP_WORDS is one PostgreSQL's english configuration drops (and a plain word is not)."""
    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as conn:
            kept = await conn.scalar(
                text(
                    "SELECT array_agg(w) FROM unnest(CAST(:words AS text[])) AS w WHERE to_tsvector('english', w) != ''"
                ),
                {"words": [*sorted(STOP_WORDS), "deploy"]},
            )
    finally:
        await engine.dispose()
    assert kept == ["deploy"]


async def test_arbitrary_text_never_breaks_a_search(session: AsyncSession) -> None:
    """Random strings from scripts, marks, joiners, digits of other systems, operators and quotes; and single words
    as long as q allows in 3-byte characters (past PostgreSQL's 2,047-byte lexeme limit)."""
    tenant_id = await _tenant_id(session)
    await _memories(session, tenant_id, "plain text ٣ ² café 漢字 e\u0301 a\u200db")
    alphabet = "ab漢字ée\u0301\u200d\u202e٣²🚀 \"*-()^:{}+!&|<>\\%_'NEARORAND\t\n"
    rng = random.Random(15)
    queries = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(150)]
    queries += ["漢" * MAX_QUERY_CHARS, "é" * MAX_QUERY_CHARS, "٣" * MAX_QUERY_CHARS, "e\u0301" * 500]
    for q in queries:
        page = await memories.list(session, tenant_id=tenant_id, q=q)
        assert all(m.score is not None for m in page.items), q
    assert await _found(session, tenant_id, "漢字") == ["plain text ٣ ² café 漢字 e\u0301 a\u200db"]
