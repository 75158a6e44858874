"""People, as the dashboard uses them: the steps before a ``Caller`` exists (the first run, signing in) and the
signed-in person a browser session names (from whom the dashboard builds its ``Caller``).

There is no scope to check here: setting up needs the one-time link, signing in needs the password, and a signed-in
person acts for their whole account (``Caller.signed_in``) until roles arrive.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users import service
from vibexp.core.users.models import User

__all__ = ["add_person", "any_user_exists", "person", "set_up_first_account", "sign_in"]


async def any_user_exists(session: AsyncSession) -> bool:
    """Whether the first run is over (a dashboard user exists)."""
    return await service.any_user_exists(session)


async def set_up_first_account(session: AsyncSession, *, account: TenantCreate, email: str, password: str) -> User:
    """The first run: the account and its first person, in the caller's transaction."""
    tenant = await tenants.create_tenant(session, data=account)
    return await service.create_user(session, tenant_id=tenant.id, email=email, password=password)


async def add_person(session: AsyncSession, *, caller: Caller, email: str, password: str) -> User:
    """A new dashboard user in the caller's account (the CLI's ``user create``)."""
    return await service.create_user(session, tenant_id=caller.tenant_id, email=email, password=password)


async def sign_in(
    session: AsyncSession, *, email: str, password: str, client_ip: str | None, user_agent: str | None
) -> User:
    """The person with this e-mail and password (``AuthenticationFailed`` otherwise); both outcomes are audited in
    the caller's transaction."""
    return await service.authenticate(
        session, email=email, password=password, client_ip=client_ip, user_agent=user_agent
    )


async def person(session: AsyncSession, *, user_id: str) -> tuple[User, Tenant] | None:
    """The signed-in person a browser session names, with their account; ``None`` once the user is gone."""
    user = await service.get_user(session, user_id=user_id)
    if user is None:
        return None
    return user, await tenants.get_tenant(session, tenant_id=user.tenant_id)
