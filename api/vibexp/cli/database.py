"""The commands' way to the database: refuse a missing embedded SQLite file, migrate, run one unit of work, and
turn a database that cannot be reached into one ``error:`` line (exit 1) instead of a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.cli.common import DatabaseUnreachable
from vibexp.core.config import DEFAULT_DATABASE_URL, Settings
from vibexp.core.db import Database, session_scope
from vibexp.core.errors import NotFound
from vibexp.core.migrate import upgrade
from vibexp.core.tenants import usecases as accounts

__all__ = [
    "database_errors",
    "in_session",
    "require_database",
    "run_database_work",
    "tenant_id",
]

T = TypeVar("T")


def _database_description(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def require_database(settings: Settings) -> None:
    """Refuse to work on an embedded SQLite file that does not exist (only ``db upgrade`` and ``serve`` create it):
    a command run in the wrong folder would otherwise create and migrate an empty database there, and then report
    that the tenant it was given does not exist."""
    if not settings.is_sqlite:
        return
    url = make_url(settings.database_url)
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        return
    path = Path(url.database)
    if path.exists():
        return
    given = (
        "the default VIBEXP_DATABASE_URL, ./vibexp.db in the current folder"
        if settings.database_url == DEFAULT_DATABASE_URL
        else f"VIBEXP_DATABASE_URL={settings.database_url}"
    )
    raise ValueError(
        f"no database at {path.absolute()} ({given}): run this command in the folder `vibexp serve` runs in, or "
        "point it at your database with VIBEXP_DATABASE_URL (e.g. sqlite+aiosqlite:////abs/path/vibexp.db or "
        "postgresql+asyncpg://user:password@host/db), or create one here with `vibexp db upgrade`"
    )


def _is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or opened (as opposed to a failed statement)."""
    if isinstance(exc, DBAPIError):
        return exc.statement is None  # raised while connecting: no statement was sent
    if isinstance(exc, BrokenPipeError):  # stdout closed (``vibexp export | head``): not the database
        return False
    return isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror))


@contextlib.contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turn a database that cannot be reached into one ``error:`` line (``DatabaseUnreachable``), not a traceback."""
    try:
        yield
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise DatabaseUnreachable(
            f"cannot reach the database {_database_description(settings.database_url)}: {reason} (check "
            "VIBEXP_DATABASE_URL, and that the database server is running and reachable from here)"
        ) from None


def _migrated(settings: Settings) -> None:
    """Check that the embedded SQLite file exists and migrate it (before the event loop: alembic runs its own)."""
    require_database(settings)
    if settings.should_auto_migrate:
        with database_errors(settings):
            upgrade(settings.database_url)


def run_database_work(settings: Settings, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(work())`` on the configured database, its connection failures one ``error:`` line."""
    _migrated(settings)
    with database_errors(settings):
        return asyncio.run(work())


def in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database (migrating the embedded SQLite file first)."""

    async def run() -> T:
        database = Database.from_settings(settings)
        try:
            async with session_scope(database.session_factory) as session:
                return await work(session)
        finally:
            await database.dispose()

    return run_database_work(settings, run)


async def tenant_id(database: Database, name: str) -> str:
    """The tenant's id; an unknown name is bad input (exit 2), as a missing file is."""
    async with session_scope(database.session_factory) as session:
        try:
            return (await accounts.account_named(session, name=name)).id
        except NotFound:
            raise ValueError(f"no tenant named {name!r}") from None
