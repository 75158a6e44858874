"""People, as the dashboard uses them: the steps before a ``Caller`` exists (the first run, signing in) and the
signed-in person a browser session names, with their role in the account (from which the dashboard builds its
``Caller``: ``Caller.signed_in``).

There is no scope to check here: setting up needs the one-time link, signing in needs the password; what a
signed-in person may do is their role's ceiling (``vibexp.core.access.ceiling``). Members, roles and invitations
are ``vibexp.core.members.usecases``.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, Role
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import service
from vibexp.core.users.models import Membership, User

__all__ = [
    "Account",
    "SignedInPerson",
    "add_person",
    "any_user_exists",
    "person",
    "set_up_first_account",
    "sign_in",
]


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


class Account(NamedTuple):
    """One account a person is a member of, as the dashboard's account switcher lists it."""

    tenant_id: str
    name: str
    role: Role


class SignedInPerson(NamedTuple):
    """The person a browser session names: the account they act in, their role there, every account they are a
    member of (``accounts``, in the order they joined: the switcher shows when there are two or more), and whether
    the account the session asked for is no longer theirs (``moved``: this is their home or first account instead).
    """

    user: User
    tenant: Tenant
    role: Role
    accounts: tuple[Account, ...]
    moved: bool = False


async def person(session: AsyncSession, *, user_id: str, tenant_id: str | None = None) -> SignedInPerson | None:
    """The signed-in person a browser session names, the account they act in and their role there: ``tenant_id``
    when given and they are a member of it, else their home account, else the first account they joined (``moved``
    when ``tenant_id`` was given but is not theirs). ``None`` once the user is gone or is a member of no account
    (removed: their sessions end on every replica at their next request).

    Two queries whatever the number of accounts: the user, and their memberships with the accounts' rows."""
    user = await service.get_user(session, user_id=user_id)
    if user is None:
        return None
    rows = (
        await session.execute(
            select(Membership, Tenant)
            .join(Tenant, Tenant.id == Membership.tenant_id)
            .where(Membership.user_id == user.id)
            .order_by(Membership.joined_at, Membership.tenant_id)
        )
    ).all()
    if not rows:
        return None
    found = {membership.tenant_id: (membership, tenant) for membership, tenant in rows}
    moved = tenant_id is not None and tenant_id not in found
    chosen = found.get(tenant_id or "") or found.get(user.tenant_id) or (rows[0][0], rows[0][1])
    accounts = tuple(
        Account(tenant_id=tenant.id, name=tenant.display_name or tenant.name, role=Role(membership.role))
        for membership, tenant in rows
    )
    return SignedInPerson(user, chosen[1], Role(chosen[0].role), accounts, moved)
