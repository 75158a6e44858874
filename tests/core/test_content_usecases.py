"""The content use cases every adapter calls: the scope check comes first (nothing is read or written for a caller
without the scope), typed finders address one object, an update takes the expected version, an artifact is
created or replaced, and export/import need every content scope."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.factories import TEST_ACTOR
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.access import Caller, CredentialKind, expand
from vibexp.core.content import schemas, usecases
from vibexp.core.content.models import Memory
from vibexp.core.content.queries import ListQuery, ProjectListQuery
from vibexp.core.errors import InsufficientScope, NotFound, PreconditionFailed
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate


def _key(tenant_id: str, names: list[str]) -> Caller:
    """A key's caller holding ``names`` (expanded, as the verifier does)."""
    return Caller(tenant_id, CredentialKind.api_key, expand(names), TEST_ACTOR)


async def _memories(session: AsyncSession, tenant_id: str) -> int | None:
    return await session.scalar(select(func.count()).select_from(Memory).where(Memory.tenant_id == tenant_id))


async def _tenant(session: AsyncSession) -> str:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name="usecases"))
    return tenant.id


async def test_every_change_needs_the_write_scope_and_changes_nothing_without_it(session: AsyncSession) -> None:
    tenant_id = await _tenant(session)
    owner = Caller.cli(tenant_id)
    reader = _key(tenant_id, ["read"])
    memory = await usecases.memories.create(session, caller=owner, data=schemas.MemoryCreate(content="a fact"))
    where = usecases.memories.by_id(memory.id)
    refused = (
        usecases.memories.create(session, caller=reader, data=schemas.MemoryCreate(content="no")),
        usecases.memories.update(session, caller=reader, where=where, data=schemas.MemoryUpdate(content="no")),
        usecases.memories.delete(session, caller=reader, where=where),
    )
    for attempt in refused:
        with pytest.raises(InsufficientScope) as raised:
            await attempt
        assert raised.value.scope == "memories:write"
    assert (await usecases.memories.get(session, caller=reader, where=where)).content == "a fact"
    assert await _memories(session, tenant_id) == 1


async def test_reading_needs_the_read_scope(session: AsyncSession) -> None:
    tenant_id = await _tenant(session)
    memories_only = _key(tenant_id, ["memories:write"])
    for cases in (usecases.prompts, usecases.artifacts):
        with pytest.raises(InsufficientScope) as raised:
            await cases.list(session, caller=memories_only, query=ListQuery())
        assert raised.value.scope == cases.read_scope
    with pytest.raises(InsufficientScope):
        await usecases.prompts.resolve(session, caller=memories_only, where=usecases.prompts.by_name("x"), version=1)
    assert (await usecases.memories.list(session, caller=memories_only, query=ProjectListQuery())).items == []


async def test_an_update_takes_the_expected_version(session: AsyncSession) -> None:
    tenant_id = await _tenant(session)
    owner = Caller.cli(tenant_id)
    await usecases.prompts.create(session, caller=owner, data=schemas.PromptCreate(name="p", content="one"))
    where = usecases.prompts.by_name("p")
    changed = await usecases.prompts.update(
        session, caller=owner, where=where, data=schemas.PromptUpdate(content="two"), expected_version=1
    )
    assert changed.version == 2
    with pytest.raises(PreconditionFailed):
        await usecases.prompts.update(
            session, caller=owner, where=where, data=schemas.PromptUpdate(content="three"), expected_version=1
        )
    assert (await usecases.prompts.get(session, caller=owner, where=where)).content == "two"


async def test_save_creates_or_replaces_an_artifact(session: AsyncSession) -> None:
    tenant_id = await _tenant(session)
    owner = Caller.cli(tenant_id)
    with pytest.raises(NotFound):  # the version the caller read is gone: never a silent create
        await usecases.artifacts.save(session, caller=owner, project="p", slug="s", content="x", expected_version=1)
    made = await usecases.artifacts.save(session, caller=owner, project="p", slug="s", content="first")
    assert (made.title, made.version, made.content_type) == ("s", 1, "text/markdown")
    replaced = await usecases.artifacts.save(
        session, caller=owner, project="p", slug="s", content="second", title="T", expected_version=1
    )
    assert (replaced.content, replaced.title, replaced.version) == ("second", "T", 2)
    found = await usecases.artifacts.get(session, caller=owner, where=usecases.artifacts.at("p", "s"))
    assert found.content == "second"


async def test_export_and_import_need_every_content_scope(session: AsyncSession) -> None:
    tenant_id = await _tenant(session)
    no_memories = _key(tenant_id, ["prompts:write", "artifacts:write"])
    with pytest.raises(InsufficientScope) as raised:
        usecases.export_lines(None, caller=no_memories)  # type: ignore[arg-type]  # no session yet
    assert raised.value.scope == "memories:read"
    with pytest.raises(InsufficientScope) as raised:
        await usecases.import_lines(
            None,  # type: ignore[arg-type]  # refused before any session
            caller=no_memories,
            lines=[b'{"type": "memory", "content": "x"}'],
        )
    assert raised.value.scope == "memories:write"
    assert await _memories(session, tenant_id) == 0
