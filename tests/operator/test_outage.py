"""The database is unreachable while an ApiKey is deleted: the finalizer keeps retrying (temporary errors) and the
revocation happens once the database is back. The outage is real: PostgreSQL refuses connections and its
backends are terminated; SQLite is locked by another writer for longer than the operator's busy timeout."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import httpx
import pytest
from opkit import Operator, call_api, unique, wait_status, wait_until
from sqlalchemy.engine import make_url

from helpers.databases import POSTGRES_URL
from helpers.servers import LiveServer

pytestmark = [pytest.mark.kube, pytest.mark.slow]


async def _pg(sql: list[str]) -> None:
    admin = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def database_outage(database_url: str) -> Iterator[None]:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        name = url.database
        asyncio.run(
            _pg(
                [
                    f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    " AND pid <> pg_backend_pid()",
                ]
            )
        )
        try:
            yield
        finally:
            asyncio.run(_pg([f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true']))
    else:
        conn = sqlite3.connect(url.database or "", timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def temporary_errors(op: Operator) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=10).text
    except httpx.TimeoutException:
        return 0.0
    for line in text.splitlines():
        labels = ('handler="delete"', 'result="temporary_error"')
        if line.startswith("vibexp_operator_reconciles_total{") and all(label in line for label in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_database_down_during_delete(operator: Operator, api: LiveServer, database_url: str) -> None:
    op = operator.start()
    tenant = unique("outage")
    op.create_tenant(tenant)
    obj = op.create_apikey("doomed", tenant)
    op.wait_ready("doomed")
    key = op.secret_key("doomed")
    assert key is not None and call_api(api.url, key) == 200

    with database_outage(database_url):
        assert op.admin.delete(op.apikeys("doomed")).status_code == 200
        # SQLite waits out its 10 s busy timeout before failing; PostgreSQL fails at once.
        wait_until(lambda: temporary_errors(op) >= 1, "a temporary error from the delete handler", timeout=40)
        still = op.get(op.apikeys("doomed"))
        assert still is not None and still["metadata"].get("deletionTimestamp")
        assert still["metadata"]["finalizers"] == ["vibexp.io/revoke-key"]
        time.sleep(1.5)  # at least one more retry while down
        assert op.get(op.apikeys("doomed")) is not None

    wait_until(lambda: op.get(op.apikeys("doomed")) is None, "ApiKey deleted after the database came back", 60)
    assert op.get(op.secrets("doomed")) is None
    wait_status(api.url, key, 401, timeout=15)
    assert [r.status for r in op.keys_of(obj["metadata"]["uid"])] == ["revoked"]
