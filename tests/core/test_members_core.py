"""Teams in the core: the role ceilings, a signed-in viewer's keys, the dashboard's person after a removal, and an
invitation opened by a different signed-in user (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core import access
from vibexp.core.access import Caller, Role, Scope
from vibexp.core.errors import Conflict, InsufficientScope
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.usecases import KeyPermissions
from vibexp.core.members import usecases as members
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import usecases as users

PASSWORD = "correct horse battery"


def test_the_ceilings_narrow_down_the_roles() -> None:
    owner, admin, member, viewer = (access.ceiling(role) for role in Role)
    assert owner == admin == frozenset(Scope) == access.ceiling(None)
    assert viewer < member < admin
    assert Scope.members_read not in member and Scope.audit_read not in member
    assert all(scope.is_read for scope in access.key_ceiling(Role.viewer))
    assert access.key_ceiling(Role.viewer) == viewer - {Scope.keys_write}
    assert [role.rank for role in Role] == [3, 2, 1, 0]


def _signed_in(tenant_id: str, user_id: str, role: Role) -> Caller:
    return Caller.signed_in(
        tenant_id=tenant_id, user_id=user_id, name="x@example.com", client_ip=None, user_agent=None, role=role
    )


async def test_a_signed_in_viewer_makes_only_read_only_keys_of_their_own(session: AsyncSession) -> None:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name="viewers"))
    user = await users.add_person(
        session, caller=Caller.cli(tenant.id), email="v@example.com", password=PASSWORD, role=Role.viewer
    )
    viewer = _signed_in(tenant.id, user.id, Role.viewer)
    with pytest.raises(InsufficientScope) as refused:
        await keys.create(
            session, caller=viewer, name="w", description="", permissions=KeyPermissions(scopes=["memories:write"])
        )
    assert refused.value.scope == "memories:write"
    made = await keys.create(session, caller=viewer, name="r", description="", permissions=KeyPermissions())
    assert made.record.owner_user_id == user.id
    assert made.record.scopes == [s.value for s in access.ALL_SCOPES if s in access.key_ceiling(Role.viewer)]


async def test_the_dashboard_forgets_a_removed_person(session: AsyncSession) -> None:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name="leavers"))
    cli = Caller.cli(tenant.id)
    owner = await users.add_person(session, caller=cli, email="o@example.com", password=PASSWORD)
    leaver = await users.add_person(session, caller=cli, email="l@example.com", password=PASSWORD, role=Role.admin)
    found = await users.person(session, user_id=leaver.id)
    assert found is not None and found[2] is Role.admin
    await users.sign_in(session, email="l@example.com", password=PASSWORD, client_ip=None, user_agent=None)
    seen = {row.email: row.last_seen_at for row in await members.list_members(session, caller=cli)}
    assert seen["l@example.com"] is not None and seen["o@example.com"] is None
    await members.remove(session, caller=_signed_in(tenant.id, owner.id, Role.owner), user_id=leaver.id)
    assert await users.person(session, user_id=leaver.id) is None  # their browser sessions end at the next request
    assert await users.person(session, user_id=owner.id) is not None


async def test_an_invitation_opened_by_another_signed_in_user_is_refused(session: AsyncSession) -> None:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name="inviting"))
    cli = Caller.cli(tenant.id)
    someone = await users.add_person(session, caller=cli, email="someone@example.com", password=PASSWORD)
    new = await members.invite(session, caller=cli, email="invitee@example.com", role=Role.member)
    with pytest.raises(Conflict) as refused:
        await members.accept_invitation(session, token=new.token, password=PASSWORD, signed_in_user_id=someone.id)
    assert refused.value.code == "wrong_user"
    user, membership, created = await members.accept_invitation(session, token=new.token, password=PASSWORD)
    assert (user.email, membership.role, created) == ("invitee@example.com", "member", True)
