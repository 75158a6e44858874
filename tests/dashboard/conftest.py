"""Fixtures for the dashboard's HTTP-level tests (the ``client`` fixture keeps cookies like a browser)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, make_person


@pytest.fixture
async def person(session_factory: async_sessionmaker[AsyncSession]) -> Person:
    return await make_person(session_factory)
