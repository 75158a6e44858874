"""People in accounts, made through the real use cases (as the CLI makes them): a member with a role and a
personal key of theirs."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.access import Caller, Role
from vibexp.core.db import session_scope
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.usecases import KeyPermissions
from vibexp.core.users import usecases as users

__all__ = ["PASSWORD", "Person", "bearer", "make_person", "make_personal_key"]

PASSWORD = "correct horse battery"


def bearer(key: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Person:
    user_id: str
    email: str
    role: Role
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


async def make_personal_key(
    factory: async_sessionmaker[AsyncSession],
    *,
    tenant_id: str,
    email: str,
    scopes: Sequence[str] | None = None,
    name: str = "laptop",
) -> tuple[str, str]:
    """A personal key of the member ``email`` (the CLI's ``key create --owner``): its plaintext and id."""
    async with session_scope(factory, write=True) as session:
        new = await keys.create(
            session,
            caller=Caller.cli(tenant_id),
            name=name,
            description="",
            permissions=KeyPermissions(scopes=scopes),
            source="cli",
            owner_email=email,
        )
        return new.plaintext, new.record.id


async def make_person(
    factory: async_sessionmaker[AsyncSession], *, tenant_id: str, role: Role, scopes: Sequence[str] | None = None
) -> Person:
    """A new user, a member of the account with ``role``, and a personal key (the role's widest by default)."""
    email = f"{role.value}-{secrets.token_hex(4)}@example.com"
    async with session_scope(factory, write=True) as session:
        user = await users.add_person(session, caller=Caller.cli(tenant_id), email=email, password=PASSWORD, role=role)
        user_id = user.id
    key, key_id = await make_personal_key(factory, tenant_id=tenant_id, email=email, scopes=scopes)
    return Person(user_id, email, role, key, key_id)
