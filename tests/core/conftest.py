"""Fixtures of the core tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from helpers.databases import create_postgres_database, drop_postgres_database
from vibexp.core.migrate import upgrade_async


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A migrated PostgreSQL database of its own, for tests about PostgreSQL only (they kill its sessions)."""
    url = await create_postgres_database("vibexp_core_pg")
    try:
        await upgrade_async(url)
        yield url
    finally:
        await drop_postgres_database(url)
