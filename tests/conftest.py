"""Suite-wide fixtures. Every database test runs twice: on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.databases import create_postgres_database, drop_postgres_database, sqlite_url
from helpers.factories import Account, make_account
from helpers.servers import LiveServer
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core.db import create_engine
from vibexp.core.migrate import upgrade_async

# The suite's webhook receiver (helpers.receiver) listens on 127.0.0.1: deliveries to loopback are allowed in every
# process the tests start (in-process settings, `vibexp serve`, the CLI, the operator). Tests of the refusal turn it
# off explicitly.
os.environ.setdefault("VIBEXP_WEBHOOK_ALLOW_PRIVATE", "true")


@pytest.fixture(scope="session", autouse=True)
def no_server_outlives_the_suite() -> Iterator[None]:
    """A `vibexp serve` a test forgets keeps polling a database that is gone (and burning CPU) after the run."""
    yield
    leftovers = LiveServer.stop_leftovers()
    assert not leftovers, f"servers that no test stopped (killed now): {leftovers}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated, empty database of each kind, shared by the session (tests isolate by tenant)."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("sqlite"))
        await upgrade_async(url)
        yield url
    else:
        url = await create_postgres_database()
        try:
            await upgrade_async(url)
            yield url
        finally:
            await drop_postgres_database(url)


@pytest.fixture
def settings(database_url: str) -> ApiSettings:
    return ApiSettings(database_url=database_url, environment="test", auto_migrate=False, bench_endpoints=True)


@pytest.fixture
async def app(settings: ApiSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    # The lifespan runs in a task of its own: it holds anyio task groups (the MCP session manager) that must be
    # exited by the task that entered them, and a fixture's set-up and teardown may run in different tasks.
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        async with application.router.lifespan_context(application):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    while not started.is_set():
        if task.done():
            task.result()  # start-up failed: raise its error here
        await asyncio.sleep(0.005)
    try:
        yield application
    finally:
        stop.set()
        await task


@pytest.fixture
def session_factory(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = app.state.runtime.session_factory
    return factory


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def account(session_factory: async_sessionmaker[AsyncSession]) -> Account:
    """A fresh free-tier tenant and one active key."""
    return await make_account(session_factory)


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test (services only flush)."""
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        transaction = await conn.begin()
        db = AsyncSession(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield db
        finally:
            await db.close()
            await transaction.rollback()
    await engine.dispose()


@pytest.fixture
def artifacts_dir() -> Iterator[Path]:
    """Where tests write files a person may want to look at (screenshots, logs)."""
    path = Path(__file__).resolve().parent.parent / "test-output"
    path.mkdir(exist_ok=True)
    yield path
