"""Fixtures shared by the REST behaviour tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account


@pytest.fixture
async def other_account(session_factory: async_sessionmaker[AsyncSession]) -> Account:
    """A second, unrelated tenant: its requests must never see the first one's objects."""
    return await make_account(session_factory)
