"""Fixtures for the fault suite: real `vibexp serve` processes on the suite's databases (SQLite and PostgreSQL).

Every fault here is caused for real (concurrent writers, a stopped PostgreSQL, ``kill -9``); each test starts the
processes and databases it breaks and stops or removes them itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory

pytestmark = pytest.mark.slow


#: Seconds a server may take to become ready (imports are slow on a busy two-core machine).
START_TIMEOUT = 120.0


def start_servers(servers: Sequence[LiveServer], log_dir: Path) -> None:
    """Start several servers at once (each start is mostly waiting on imports); all or none keep running."""
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(server.start, log_dir, START_TIMEOUT) for server in servers]
        errors = [f.exception() for f in futures]
    if any(errors):
        for server in servers:
            server.stop()
        raise next(e for e in errors if e is not None)


@pytest.fixture
async def db_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database from outside any server process (like the CLI)."""
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def two_servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two API processes on one database: two replicas behind a load balancer (per module: starting is slow)."""
    first, second = LiveServer(database_url), LiveServer(database_url)
    start_servers((first, second), tmp_path_factory.mktemp("logs"))
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
