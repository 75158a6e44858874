"""``members.ensure_owner``, the use case the operator applies ``spec.owners`` through (SQLite and PostgreSQL, no
cluster): a user joins as owner or is promoted, an owner is left alone, an unknown e-mail is ``None``, and only an
owner-ranked caller makes owners."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, ActorType, Caller, Role
from vibexp.core.audit import usecases as audit
from vibexp.core.errors import Conflict, InsufficientScope
from vibexp.core.members import usecases as members
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import usecases as users

PASSWORD = "correct horse battery"


async def _account(session: AsyncSession, prefix: str) -> str:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name=f"{prefix}-{secrets.token_hex(4)}"))
    return tenant.id


def _operator(tenant_id: str) -> Caller:
    return Caller.operator(tenant_id, actor=Actor(ActorType.operator, id="acme", name="operator (VibeXPTenant acme)"))


async def test_ensure_owner_joins_promotes_or_leaves_alone(session: AsyncSession) -> None:
    home = await _account(session, "home")
    target = await _account(session, "owned")
    cli_home, operator = Caller.cli(home), _operator(target)
    outsider = await users.add_person(session, caller=cli_home, email="out@example.com", password=PASSWORD)
    viewer = await users.add_person(
        session, caller=Caller.cli(target), email="view@example.com", password=PASSWORD, role=Role.viewer
    )

    joined = await members.ensure_owner(session, caller=operator, email="OUT@example.com")
    assert joined is not None and (joined.user.id, joined.previous, joined.changed) == (outsider.id, None, True)
    promoted = await members.ensure_owner(session, caller=operator, email="view@example.com")
    assert promoted is not None and (promoted.user.id, promoted.previous) == (viewer.id, Role.viewer)
    again = await members.ensure_owner(session, caller=operator, email="view@example.com")
    assert again is not None and (again.previous, again.changed) == (Role.owner, False)
    assert await members.ensure_owner(session, caller=operator, email="nobody@example.com") is None

    roles = {row.email: row.role for row in await members.list_members(session, caller=operator)}
    assert roles == {"out@example.com": "owner", "view@example.com": "owner"}
    # The audit trail names the operator, once per change (nothing for the no-op).
    page = await audit.list_events(session, caller=operator)
    mine = [(e.action, e.target_name, e.actor_type) for e in page.items if e.action.startswith("member.")]
    assert sorted(mine) == [
        ("member.joined", "out@example.com", "operator"),
        ("member.joined", "view@example.com", "cli"),  # made a viewer by the CLI above
        ("member.role_changed", "view@example.com", "operator"),
    ]


async def test_only_an_owner_ranked_caller_makes_owners(session: AsyncSession) -> None:
    target = await _account(session, "ranks")
    cli = Caller.cli(target)
    admin = await users.add_person(session, caller=cli, email="adm@example.com", password=PASSWORD, role=Role.admin)
    await users.add_person(session, caller=cli, email="mem@example.com", password=PASSWORD, role=Role.member)
    signed_in_admin = Caller.signed_in(
        tenant_id=target, user_id=admin.id, name=admin.email, client_ip=None, user_agent=None, role=Role.admin
    )
    with pytest.raises(InsufficientScope):
        await members.ensure_owner(session, caller=signed_in_admin, email="mem@example.com")
    roles = {row.email: row.role for row in await members.list_members(session, caller=cli)}
    assert roles["mem@example.com"] == "member"


async def test_the_last_owner_cannot_be_demoted_by_the_operator(session: AsyncSession) -> None:
    """The rule the operator relies on when an e-mail leaves spec.owners: demoting the only owner is refused."""
    target = await _account(session, "last")
    operator = _operator(target)
    only = await users.add_person(session, caller=Caller.cli(target), email="only@example.com", password=PASSWORD)
    with pytest.raises(Conflict) as refused:
        await members.change_role(session, caller=operator, user_id=only.id, role=Role.admin)
    assert refused.value.code == "last_owner"
