"""Tenant tiers and limits, and the content stores (tenant scoping, versions, uniqueness, search, bad values)."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.factories import TEST_ACTOR
from vibexp.core.account import update_tenant
from vibexp.core.content import schemas
from vibexp.core.content.service import artifacts, memories, prompts
from vibexp.core.errors import AlreadyExists, InvalidInput, NotFound, PreconditionFailed
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant, Tier
from vibexp.core.tenants.schemas import TenantCreate, TenantUpdate


async def _tenant(session: AsyncSession, **fields: object) -> Tenant:
    return await tenants.create_tenant(
        session, data=TenantCreate.model_validate({"name": f"t-{secrets.token_hex(5)}", **fields})
    )


@pytest.mark.parametrize(("tier", "limit"), [(Tier.free, 1_000), (Tier.pro, 10_000)])
async def test_tier_defaults(session: AsyncSession, tier: Tier, limit: int) -> None:
    tenant = await _tenant(session, tier=tier)
    assert tenant.hourly_limit == limit and not tenant.suspended


async def test_custom_limit_overrides_the_tier(session: AsyncSession) -> None:
    assert (await _tenant(session, tier=Tier.free, rate_limit_per_hour=5)).hourly_limit == 5


async def test_enterprise_needs_a_limit(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput):
        await _tenant(session, tier=Tier.enterprise)
    tenant = await _tenant(session, tier=Tier.enterprise, rate_limit_per_hour=250_000)
    assert tenant.hourly_limit == 250_000
    # Dropping the custom limit of an enterprise tenant, or moving a tenant to enterprise without one, is refused.
    with pytest.raises(InvalidInput):
        await update_tenant(session, actor=TEST_ACTOR, tenant=tenant, data=TenantUpdate(rate_limit_per_hour=None))
    free = await _tenant(session)
    with pytest.raises(InvalidInput):
        await update_tenant(session, actor=TEST_ACTOR, tenant=free, data=TenantUpdate(tier=Tier.enterprise))
    moved = await update_tenant(
        session, actor=TEST_ACTOR, tenant=free, data=TenantUpdate(tier=Tier.enterprise, rate_limit_per_hour=50_000)
    )
    assert moved.tier == "enterprise" and moved.hourly_limit == 50_000


async def test_tenant_names_are_unique_and_rfc1123(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    with pytest.raises(AlreadyExists):
        await tenants.create_tenant(session, data=TenantCreate(name=tenant.name))
    for bad in ["UPPER", "-lead", "trail-", "a" * 64, "under_score", ""]:
        with pytest.raises(ValueError):
            TenantCreate(name=bad)


async def test_suspension_is_a_tenant_update(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    before = tenant.updated_at
    await update_tenant(session, actor=TEST_ACTOR, tenant=tenant, data=TenantUpdate(suspended=True))
    assert tenant.suspended and tenant.updated_at >= before


async def test_content_is_scoped_to_its_tenant(session: AsyncSession) -> None:
    owner, stranger = await _tenant(session), await _tenant(session)
    memory = await memories.create(session, tenant_id=owner.id, data=schemas.MemoryCreate(content="secret"))
    assert (await memories.get(session, tenant_id=owner.id, id=memory.id)).content == "secret"
    with pytest.raises(NotFound):
        await memories.get(session, tenant_id=stranger.id, id=memory.id)
    assert (await memories.list(session, tenant_id=stranger.id, q="secret")).items == []


async def test_updates_bump_the_version_and_check_the_expected_one(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    prompt = await prompts.create(session, tenant_id=tenant.id, data=schemas.PromptCreate(name="p", content="v1"))
    assert prompt.version == 1
    await prompts.update(session, obj=prompt, data=schemas.PromptUpdate(content="v2"), expected_version=1)
    assert prompt.version == 2 and prompt.content == "v2"
    with pytest.raises(PreconditionFailed):
        await prompts.update(session, obj=prompt, data=schemas.PromptUpdate(content="v3"), expected_version=1)
    assert prompt.content == "v2" and prompt.version == 2
    await prompts.update(session, obj=prompt, data=schemas.PromptUpdate(description="d"))
    assert prompt.version == 3 and prompt.content == "v2"


async def test_unique_names_and_addresses(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    await prompts.create(session, tenant_id=tenant.id, data=schemas.PromptCreate(name="same", content="x"))
    with pytest.raises(AlreadyExists):
        await prompts.create(session, tenant_id=tenant.id, data=schemas.PromptCreate(name="same", content="y"))
    body = schemas.ArtifactCreate(project="p", slug="s", title="t", content="c")
    await artifacts.create(session, tenant_id=tenant.id, data=body)
    with pytest.raises(AlreadyExists):
        await artifacts.create(session, tenant_id=tenant.id, data=body)


async def test_values_no_database_can_store_are_refused_before_the_database(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    with pytest.raises(NotFound):
        await memories.get(session, tenant_id=tenant.id, id="a\x00b")
    with pytest.raises(NotFound):
        await artifacts.get(session, tenant_id=tenant.id, project="p\x00", slug="s")
    for kwargs in ({"q": "a\x00"}, {"tag": "\x00"}, {"q": "\ud800"}):
        with pytest.raises(InvalidInput):
            await memories.list(session, tenant_id=tenant.id, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await artifacts.list(session, tenant_id=tenant.id, filters={"project": "x\x00"})
    for bad in ["a\x00b", "\ud800"]:
        with pytest.raises(ValueError):
            schemas.MemoryCreate(content=bad)
        with pytest.raises(ValueError):
            schemas.PromptCreate(name="n", content="c", tags=[bad])


async def test_search_and_tags_through_the_store(session: AsyncSession) -> None:
    tenant = await _tenant(session)
    for content, tags in [("100% done", ["日本"]), ("100 done", ["a_b"]), ("other", ["axb"])]:
        await memories.create(session, tenant_id=tenant.id, data=schemas.MemoryCreate(content=content, tags=tags))

    async def contents(**kwargs: str) -> list[str]:
        page = await memories.list(session, tenant_id=tenant.id, **kwargs)  # type: ignore[arg-type]
        return sorted(m.content for m in page.items)

    assert await contents(q="%") == []  # no word in it: nothing to search for (vibexp.core.content.search)
    assert await contents(q="100%") == ["100 done", "100% done"]
    assert await contents(q="DONE") == ["100 done", "100% done"]
    assert await contents(tag="日本") == ["100% done"]
    assert await contents(tag="a_b") == ["100 done"]
    assert await contents(tag=" a_b ") == ["100 done"]
