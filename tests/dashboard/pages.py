"""Helpers for HTTP-level dashboard tests: a signed-up person, reading CSRF tokens from pages, signing in."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from vibexp.core.db import session_scope
from vibexp.core.users.service import create_user

__all__ = ["PASSWORD", "Person", "csrf_of", "csrf_token", "make_person", "sign_in"]

PASSWORD = "correct-horse-battery-staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Person:
    email: str
    password: str
    account: Account


async def make_person(factory: async_sessionmaker[AsyncSession]) -> Person:
    account = await make_account(factory)
    email = f"{secrets.token_hex(4)}@example.com"
    async with session_scope(factory) as session:
        await create_user(session, tenant_id=account.tenant.id, email=email, password=PASSWORD)
    return Person(email=email, password=PASSWORD, account=account)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def csrf_token(client: httpx.AsyncClient, path: str = "/login") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


async def sign_in(client: httpx.AsyncClient, person: Person) -> httpx.Response:
    token = await csrf_token(client)
    response = await client.post(
        "/login", data={"email": person.email, "password": person.password, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return response
