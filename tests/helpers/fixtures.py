"""Fixtures more than one folder of the suite uses (loaded by tests/conftest.py as a plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.databases import DATABASE_KINDS, scratch_database
from helpers.factories import Account
from helpers.servers import LiveServer
from oauth.flow import LOCAL_BASE, Connect, Flow, person_flow
from vibexp.core.access import Role
from vibexp.core.db import create_engine, create_session_factory

__all__ = ["START_TIMEOUT", "db_factory", "empty_database_url", "oauth_person", "start_servers", "two_servers"]

#: Seconds a `vibexp serve` may take to become ready (imports are slow on a busy two-core machine).
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
async def oauth_person(
    app: FastAPI, client_address: str, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Connect]:
    """``oauth_person(role, client_id=None)``: a new person of ``role`` in the test's ``account``, signed in on a
    browser of their own (``Flow.http``, on the in-process app at ``http://127.0.0.1``), and an OAuth client
    (``client_id``, or one registered now): ``await flow.tokens()`` then makes them a grant through the real consent
    flow."""
    async with AsyncExitStack() as stack:

        async def new(role: Role = Role.member, client_id: str | None = None) -> Flow:
            transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
            browser = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE))
            return await person_flow(
                browser, session_factory, tenant_id=account.tenant.id, role=role, client_id=client_id
            )

        yield new


@pytest.fixture
async def db_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database from outside any server process (like the CLI or the operator)."""
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


@pytest.fixture(params=DATABASE_KINDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the test's own, not migrated (a migration test seeds it at an old revision)."""
    async with scratch_database(request.param, tmp_path) as url:
        yield url
