"""An outage is logged as one event: it ends only when a database operation succeeds again.

Requests that need no database (``/healthz``, a static file, a malformed key refused before any lookup) used to
end the outage in the log ("database reachable again") while PostgreSQL was still down, so with probes every 503
cost two more lines. On a private PostgreSQL cluster this test stops and starts.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from helpers.factories import make_account
from helpers.fixtures import START_TIMEOUT
from helpers.private_postgres import PrivatePostgres
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade_async

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

UNREACHABLE = "database unreachable, answering 503"
REACHABLE = "database reachable again"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


async def test_only_a_database_operation_ends_an_outage_in_the_log(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pg = private_postgres
    await pg.create_database()
    await upgrade_async(pg.url)
    engine = create_engine(pg.url)
    try:
        account = await make_account(create_session_factory(engine))
    finally:
        await engine.dispose()
    server = LiveServer(pg.url).start(tmp_path_factory.mktemp("logs"), START_TIMEOUT)
    with server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/api/v1/prompts", headers=account.headers)).status_code == 200
            pg.stop()
            assert (await http.get("/api/v1/memories", headers=account.headers)).status_code == 503
            start = len(server.log())
            for _ in range(3):
                assert (await http.get("/healthz")).status_code == 200
                malformed = await http.get("/api/v1/prompts", headers={"Authorization": "Bearer not-a-key"})
                assert malformed.status_code == 401
                static = await http.get("/static/app.css")
                assert static.status_code == 200
                assert (await http.get("/api/v1/memories", headers=account.headers)).status_code == 503
            await asyncio.sleep(0.5)
            during = server.log()[start:]
            assert REACHABLE not in during, during[-2000:]
            assert UNREACHABLE not in during, "the outage did not end, so it does not start again"

            pg.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if (await http.get("/api/v1/memories", headers=account.headers)).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("not serving again 30 s after PostgreSQL restarted")
            for _ in range(3):
                assert (await http.get("/healthz")).status_code == 200
                assert (await http.get("/api/v1/memories", headers=account.headers)).status_code == 200
            await asyncio.sleep(0.5)
        after = server.log()[start:]
        assert after.count(REACHABLE) == 1, after[-3000:]
        answered = re.search(r"(\d+) requests were answered 503", after)
        assert answered is not None and int(answered.group(1)) >= 4, "the whole outage, in the one line"
