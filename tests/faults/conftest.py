"""Fixtures for the fault suite: real `vibexp serve` processes on the suite's databases (SQLite and PostgreSQL).

Every fault here is caused for real (concurrent writers, a stopped PostgreSQL, ``kill -9``); each test starts the
processes and databases it breaks and stops or removes them itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory

pytestmark = pytest.mark.slow


@pytest.fixture
async def db_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database from outside any server process (like the CLI)."""
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def two_servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two API processes on one database: two replicas behind a load balancer (per module: starting is slow)."""
    logs = tmp_path_factory.mktemp("logs")
    first = LiveServer(database_url).start(logs)
    try:
        second = LiveServer(database_url).start(logs)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
