"""Fixtures for the dashboard's HTTP-level tests (the suite's ``client`` keeps cookies like a browser, and calls from
a client address of its own: sign-in attempts are counted per address in the database, which the session shares)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, make_person


@pytest.fixture
async def person(session_factory: async_sessionmaker[AsyncSession]) -> Person:
    return await make_person(session_factory)


@pytest.fixture
async def other_person(session_factory: async_sessionmaker[AsyncSession]) -> Person:
    """A second, unrelated account."""
    return await make_person(session_factory)
