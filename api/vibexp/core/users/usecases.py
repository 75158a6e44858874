"""People, as the dashboard uses them: the steps before a ``Caller`` exists (the first run, signing in) and the
signed-in person a browser session names, with their role in the account (from which the dashboard builds its
``Caller``: ``Caller.signed_in``).

There is no scope to check here: setting up needs the one-time link, signing in needs the password; what a
signed-in person may do is their role's ceiling (``vibexp.core.access.ceiling``). Members, roles and invitations
are ``vibexp.core.members.usecases``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, Role
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import service
from vibexp.core.users.models import Membership, User

__all__ = ["add_person", "any_user_exists", "person", "set_up_first_account", "sign_in"]


async def any_user_exists(session: AsyncSession) -> bool:
    """Whether the first run is over (a dashboard user exists)."""
    return await service.any_user_exists(session)


async def set_up_first_account(session: AsyncSession, *, account: TenantCreate, email: str, password: str) -> User:
    """The first run: the account and its first person, its owner, in the caller's transaction."""
    tenant = await tenants.create_tenant(session, data=account)
    return await service.create_user(session, tenant_id=tenant.id, email=email, password=password, role=Role.owner)


async def add_person(
    session: AsyncSession, *, caller: Caller, email: str, password: str, role: Role = Role.owner
) -> User:
    """A new dashboard user in the caller's account with ``role`` (the CLI's ``user create``; owner by default, as
    every user was before roles)."""
    return await service.create_user(
        session, tenant_id=caller.tenant_id, email=email, password=password, role=role, actor=caller.actor
    )


async def sign_in(
    session: AsyncSession, *, email: str, password: str, client_ip: str | None, user_agent: str | None
) -> User:
    """The person with this e-mail and password (``AuthenticationFailed`` otherwise); both outcomes are audited in
    the caller's transaction."""
    return await service.authenticate(
        session, email=email, password=password, client_ip=client_ip, user_agent=user_agent
    )


async def person(
    session: AsyncSession, *, user_id: str, tenant_id: str | None = None
) -> tuple[User, Tenant, Role] | None:
    """The signed-in person a browser session names, the account they act in and their role there: ``tenant_id``
    when given, else their home account, else the first account they joined. ``None`` once the user is gone or is
    a member of no such account (removed: their sessions end on every replica at their next request)."""
    user = await service.get_user(session, user_id=user_id)
    if user is None:
        return None
    query = select(Membership).where(Membership.user_id == user.id)
    if tenant_id is not None:
        query = query.where(Membership.tenant_id == tenant_id)
    memberships = list(await session.scalars(query.order_by(Membership.joined_at)))
    if not memberships:
        return None
    chosen = next((m for m in memberships if m.tenant_id == user.tenant_id), memberships[0])
    return user, await tenants.get_tenant(session, tenant_id=chosen.tenant_id), Role(chosen.role)
