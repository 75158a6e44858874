"""Fixtures for the dashboard's HTTP-level tests (the ``client`` fixture keeps cookies like a browser)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, make_person


@pytest.fixture
async def person(session_factory: async_sessionmaker[AsyncSession]) -> Person:
    return await make_person(session_factory)


@pytest.fixture
async def other_person(session_factory: async_sessionmaker[AsyncSession]) -> Person:
    """A second, unrelated account."""
    return await make_person(session_factory)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like the suite's client, from a client address of its own: sign-in attempts are counted per address in the
    database, which the whole session shares."""
    address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
