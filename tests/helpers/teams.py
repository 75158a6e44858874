"""People in accounts, made through the real use cases (as the CLI makes them): a member with a role and a
personal key of theirs."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.access import Caller, Role
from vibexp.core.db import session_scope
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.usecases import KeyPermissions
from vibexp.core.oauth import service as oauth
from vibexp.core.users import usecases as users

__all__ = ["PASSWORD", "Grant", "Person", "bearer", "make_grant", "make_person", "make_personal_key"]

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


@dataclass
class Grant:
    """A connected app of a person, made through the OAuth service (consent, then the code exchange), and an
    authorization code of a second, never exchanged consent (``spare_code``) of the same person and client."""

    grant_id: str
    client_id: str
    access_token: str
    refresh_token: str
    spare_code: str


async def make_grant(
    factory: async_sessionmaker[AsyncSession], *, tenant_id: str, person: Person, scopes: Sequence[str]
) -> Grant:
    """A grant made without HTTP (no dashboard session needed), as ``/oauth/authorize`` and ``/oauth/token`` make
    one: for tests that work on the database from outside any server (the CLI's)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:33418/callback"
    common = {"redirect_uri": redirect, "code_challenge": challenge, "resource": "http://127.0.0.1/mcp/v1/connect"}
    actor = Caller.cli(tenant_id).actor
    async with session_scope(factory, write=True) as session:
        client = await oauth.register_client(session, name="Leaky tool", redirect_uris=[redirect])
        client_id = client.id
        code, spare = [
            await oauth.issue_code(
                session,
                tenant_id=tenant_id,
                user_id=person.user_id,
                client=client,
                scopes=list(scopes),
                actor=actor,
                **common,
            )
            for _ in range(2)
        ]
    async with session_scope(factory, write=True) as session:
        tokens = await oauth.exchange_code(
            session,
            code=code,
            code_verifier=verifier,
            client_id=client_id,
            redirect_uri=redirect,
            resource=None,
            actor=actor,
        )
    return Grant(tokens.grant_id, client_id, tokens.access_token, tokens.refresh_token, spare)
