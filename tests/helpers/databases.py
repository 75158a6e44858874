"""Throw-away databases: a fresh SQLite file or a fresh PostgreSQL database per test session."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from vibexp.core.migrate import alembic_config, upgrade_async

__all__ = [
    "DATABASE_KINDS",
    "POSTGRES_URL",
    "create_postgres_database",
    "drop_postgres_database",
    "revision_before",
    "scratch_database",
    "sqlite_url",
]

#: The databases every database test runs on (``--db`` picks some; see tests/conftest.py).
DATABASE_KINDS = ("sqlite", "postgres")

#: Where the suite's PostgreSQL lives (``make test`` runs tests/scripts/ensure-postgres.sh first).
POSTGRES_URL = os.environ.get("VIBEXP_TEST_POSTGRES_URL", "postgresql+asyncpg://vibexp:vibexp@127.0.0.1:5432/postgres")


def sqlite_url(directory: Path, name: str = "vibexp.db") -> str:
    return f"sqlite+aiosqlite:///{directory / name}"


def _dsn(database: str) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


async def create_postgres_database(prefix: str = "vibexp_test") -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_dsn(make_url(POSTGRES_URL).database or "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_dsn(make_url(POSTGRES_URL).database or "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def terminate_connections(url: str) -> int:
    """Kill every server session on the database of ``url`` (what a restart or failover does to a pool); how many."""
    # Our own role's sessions only: an autovacuum worker on the database belongs to the superuser, and
    # terminating it is refused ("must be a member of the role whose process is being terminated").
    return await _sessions(url, "count(pg_terminate_backend(pid))", "")


async def server_sessions(url: str, *, pid: int | None = None, active: bool = False) -> int:
    """How many server sessions our role has open on the database of ``url`` (besides the one asking); only the
    backend ``pid`` (``get_server_pid()`` of an asyncpg connection), only those running a statement (``active``)."""
    where = ("" if pid is None else f" AND pid = {int(pid)}") + (" AND state = 'active'" if active else "")
    return await _sessions(url, "count(*)", where)


async def _sessions(url: str, aggregate: str, where: str) -> int:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
        ssl=False,
    )
    try:
        count: int = await admin.fetchval(
            f"SELECT {aggregate} FROM pg_stat_activity"  # fixed fragments from the two functions above
            f" WHERE datname = $1 AND pid <> pg_backend_pid() AND usename = current_user{where}",
            parsed.database,
        )
    finally:
        await admin.close()
    return count


@asynccontextmanager
async def scratch_database(
    kind: str, directory: Path, *, revision: str | None = None, prefix: str = "vibexp_test"
) -> AsyncIterator[str]:
    """A database of its own for one test: a SQLite file in ``directory`` or a PostgreSQL database (dropped at the
    end). Empty, or migrated up to ``revision`` ("head" for today's schema) when one is given: a migration test
    seeds it at an old revision, then upgrades."""
    if kind not in DATABASE_KINDS:
        raise ValueError(f"unknown database kind {kind!r}")
    url = sqlite_url(directory) if kind == "sqlite" else await create_postgres_database(prefix)
    try:
        if revision is not None:
            await upgrade_async(url, revision)
        yield url
    finally:
        if kind == "postgres":
            await drop_postgres_database(url)


def revision_before(revision: str) -> str:
    """The revision ``revision`` follows, read from alembic's chain (not a literal that the next migration would
    make wrong)."""
    down = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_revision(revision).down_revision
    if not isinstance(down, str):
        raise ValueError(f"{revision} does not follow exactly one revision: {down!r}")
    return down
