"""Suite-wide fixtures. Every database test runs on SQLite and on a real PostgreSQL server (``--db`` picks one).

Tests share one app per database (its lifespan entered once per session) and isolate by tenant: the ``account``
fixture makes a fresh tenant and key, the ``client`` fixture calls from a client address of its own. A test that
needs an app of its own (other settings, a fault, a change to the app's state) says so with
``@pytest.mark.fresh_app``; a module or folder that overrides the ``settings`` fixture gets a fresh app too.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.apps import running
from helpers.databases import DATABASE_KINDS, create_postgres_database, drop_postgres_database, sqlite_url
from helpers.factories import Account, make_account
from helpers.marks import PROCESS_MARKS, database_kind, derived_marks
from helpers.servers import LiveServer
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core.db import create_engine
from vibexp.core.migrate import upgrade_async

pytest_plugins = ["helpers.fixtures"]

# The suite's webhook receiver (helpers.receiver) listens on 127.0.0.1: deliveries to loopback are allowed in every
# process the tests start (in-process settings, `vibexp serve`, the CLI, the operator). Tests of the refusal turn it
# off explicitly.
os.environ.setdefault("VIBEXP_WEBHOOK_ALLOW_PRIVATE", "true")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=(*DATABASE_KINDS, "all"),
        default=os.environ.get("VIBEXP_TEST_DB", "all"),
        help="run the database tests on this database only (default: all; env VIBEXP_TEST_DB)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the derived marks (helpers/marks.py), then deselect the tests of the databases ``--db`` leaves out."""
    chosen = config.getoption("--db")
    kept, dropped = [], []
    for item in items:
        for name in sorted(derived_marks(item) - {m.name for m in item.iter_markers()}):
            item.add_marker(name)
        kind = database_kind(item) or ("postgres" if item.get_closest_marker("postgres") else None)
        (dropped if chosen != "all" and kind not in (None, chosen) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


#: Processes started by the running test (the audit hook below records them; see ``pytest_runtest_teardown``).
_spawned: list[str] = []
_spawn_allowed = True


def _record_spawns(event: str, args: tuple[object, ...]) -> None:
    if event == "subprocess.Popen" and not _spawn_allowed:
        _spawned.append(repr(args[1])[:200])


sys.addaudithook(_record_spawns)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _spawn_allowed
    _spawn_allowed = any(item.get_closest_marker(name) for name in PROCESS_MARKS)
    _spawned.clear()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A test that starts a process must carry a mark saying so (``make test-fast`` starts none)."""
    global _spawn_allowed
    spawned, _spawn_allowed = list(_spawned), True
    _spawned.clear()
    if spawned:
        marks = ", ".join(sorted(PROCESS_MARKS))
        pytest.fail(f"{item.nodeid} started processes without one of the marks {marks}: {spawned}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def no_server_outlives_the_suite() -> Iterator[None]:
    """A `vibexp serve` a test forgets keeps polling a database that is gone (and burning CPU) after the run."""
    yield
    leftovers = LiveServer.stop_leftovers()
    assert not leftovers, f"servers that no test stopped (killed now): {leftovers}"


@pytest.fixture(scope="session", params=DATABASE_KINDS)
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


@pytest.fixture(scope="session")
def shared_settings(database_url: str) -> ApiSettings:
    return ApiSettings(database_url=database_url, environment="test", auto_migrate=False, bench_endpoints=True)


@pytest.fixture
def settings(shared_settings: ApiSettings) -> ApiSettings:
    """The settings of the test's app (a copy: a test may change its own)."""
    return shared_settings.model_copy(deep=True)


class SharedApp:
    """The database's shared app: started by the first test that asks for ``app``, stopped before a test that does
    not (its background tasks, the webhook sender and the usage flush, must not act while such a test runs: no
    app ran during it before), started again by the next test that asks."""

    running: ClassVar[list[SharedApp]] = []

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._stack: AsyncExitStack | None = None
        self._app: FastAPI | None = None

    async def start(self) -> FastAPI:
        if self._app is None:
            for other in list(SharedApp.running):
                await other.stop()
            stack = AsyncExitStack()
            self._app = await stack.enter_async_context(running(create_app(self.settings)))
            self._stack = stack
            SharedApp.running.append(self)
        return self._app

    async def stop(self) -> None:
        stack, self._stack, self._app = self._stack, None, None
        if stack is not None:
            SharedApp.running.remove(self)
            await stack.aclose()


@pytest.fixture(scope="session")
async def shared_app(shared_settings: ApiSettings) -> AsyncIterator[SharedApp]:
    """One app per database, shared by the tests that isolate by tenant (stopped before its database goes)."""
    shared = SharedApp(shared_settings)
    yield shared
    await shared.stop()


@pytest.fixture(autouse=True)
async def no_shared_app_in_the_background(request: pytest.FixtureRequest) -> None:
    if SharedApp.running and "app" not in request.fixturenames:
        for shared in list(SharedApp.running):
            await shared.stop()


@pytest.fixture
async def app(
    request: pytest.FixtureRequest, settings: ApiSettings, shared_settings: ApiSettings, shared_app: SharedApp
) -> AsyncIterator[FastAPI]:
    """The database's shared app, or a fresh one for a test marked ``fresh_app`` or with settings of its own."""
    if request.node.get_closest_marker("fresh_app") or settings != shared_settings:
        await shared_app.stop()  # one app at a time, as before
        async with running(create_app(settings)) as application:
            yield application
        return
    application = await shared_app.start()
    yield application
    # What stopping a fresh app did: the test's buffered usage is written before the next test starts.
    await application.state.runtime.usage.flush()


@pytest.fixture
def session_factory(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = app.state.runtime.session_factory
    return factory


_addresses = itertools.count(1)


@pytest.fixture
def client_address() -> str:
    """The ``client`` fixture's peer address, one per test (10.0.0.1, 10.0.0.2, ...): what the app keys by address
    (the failing-address throttle, sign-in attempts, alert addresses) starts empty for every test."""
    n = next(_addresses)
    return f"10.{n // 254 >> 8 & 255}.{n // 254 & 255}.{n % 254 + 1}"


@pytest.fixture
async def client(app: FastAPI, client_address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
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
