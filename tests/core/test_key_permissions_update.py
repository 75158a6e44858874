"""Changing an existing key's scopes and networks in place (what the operator does when an ApiKey's spec.scopes
or spec.allowedCidrs change): validated, recorded once in the audit trail, and announced to key verifiers."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.factories import TEST_ACTOR
from vibexp.core import (
    models,  # noqa: F401 - registers every table on Base.metadata
    notices,
)
from vibexp.core.audit import service as audit
from vibexp.core.clock import utcnow
from vibexp.core.errors import InvalidInput
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey
from vibexp.core.notices import Notice
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate


async def _key(session: AsyncSession) -> ApiKey:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name=f"inplace-{utcnow().timestamp():.0f}"))
    new = await keys.create_key(session, tenant_id=tenant.id, name="agent", actor=TEST_ACTOR)
    return new.record


async def _changes(session: AsyncSession, key: ApiKey) -> list[dict[str, object]]:
    page = await audit.list_events(session, tenant_id=key.tenant_id, action="key.permissions_changed")
    return [event.details or {} for event in page.items]


async def test_permissions_change_in_place_once(session: AsyncSession) -> None:
    key = await _key(session)
    before = key.updated_at
    noted_before = len(notices.noted(session, Notice.KEY_CHANGED))
    changed = await keys.set_key_permissions(
        session, key=key, scopes=["read"], allowed_cidrs=["2001:DB8::/32", "10.0.0.0/8"], actor=TEST_ACTOR
    )
    assert changed
    # Stored canonical, as a new key's would be; verifiers are told (on commit here, by updated_at elsewhere).
    assert (key.scopes, key.allowed_cidrs) == (["read"], ["2001:db8::/32", "10.0.0.0/8"])
    assert key.updated_at > before
    assert key.id in notices.noted(session, Notice.KEY_CHANGED)[noted_before:]
    assert await _changes(session, key) == [
        {
            "scopes": ["read"],
            "allowed_cidrs": ["2001:db8::/32", "10.0.0.0/8"],
            "confirm_destructive": False,
            "previous": {"scopes": ["*"], "allowed_cidrs": [], "confirm_destructive": False},
        }
    ]
    # The same permissions again (in another spelling): nothing to do, nothing recorded.
    again = await keys.set_key_permissions(
        session, key=key, scopes=["read"], allowed_cidrs=["2001:db8::/32", "10.0.0.0/8"], actor=TEST_ACTOR
    )
    assert not again and len(await _changes(session, key)) == 1


@pytest.mark.parametrize(
    ("scopes", "cidrs", "problem"),
    [
        ([], [], "at least one scope"),
        (["prompts:admin"], [], "unknown scope 'prompts:admin'"),
        (["read", "read"], [], "listed twice"),
        (["read"], ["10.0.0.1/8"], "did you mean 10.0.0.0/8"),
        (["read"], ["fe80::1%eth0/64"], "zones"),
        (["read"], ["nowhere"], "not an IPv4 or IPv6 CIDR"),
    ],
)
async def test_bad_permissions_are_refused(
    session: AsyncSession, scopes: list[str], cidrs: list[str], problem: str
) -> None:
    key = await _key(session)
    with pytest.raises(InvalidInput, match=problem):
        await keys.set_key_permissions(session, key=key, scopes=scopes, allowed_cidrs=cidrs, actor=TEST_ACTOR)
    assert (key.scopes, key.allowed_cidrs) == (["*"], [])


async def test_a_revoked_key_keeps_its_permissions(session: AsyncSession) -> None:
    key = await keys.revoke_key(session, key=await _key(session), actor=TEST_ACTOR)
    with pytest.raises(InvalidInput, match="revoked"):
        await keys.set_key_permissions(session, key=key, scopes=["read"], allowed_cidrs=[], actor=TEST_ACTOR)
    assert key.scopes == ["*"] and await _changes(session, key) == []
