"""First-run setup across replicas: two `vibexp serve` processes on one empty database (a SQLite file, PostgreSQL),
each with its own setup link, both forms submitted at once. Exactly one first account and one user may be made;
the other submission gets a page saying setup is already done (409), not a 500 and not a second "first" account.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from dashboard.pages import csrf_of
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade_async
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import User

pytestmark = pytest.mark.slow

SETUP_LINK = re.compile(r"http://127\.0\.0\.1:\d+(/setup\?token=[A-Za-z0-9_-]+)")
PASSWORD = "first-run-password-123"


@pytest.fixture
async def empty_database(empty_database_url: str) -> str:
    """A migrated database without any account or user (the suite's shared one has users already)."""
    await upgrade_async(empty_database_url)
    return empty_database_url


@pytest.fixture
def two_fresh_servers(empty_database: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    servers = (LiveServer(empty_database), LiveServer(empty_database))
    start_servers(servers, tmp_path)
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_two_replicas_racing_the_setup_form_make_exactly_one_first_account(
    two_fresh_servers: tuple[LiveServer, LiveServer], empty_database: str
) -> None:
    clients = [httpx.AsyncClient(base_url=server.url, timeout=60) for server in two_fresh_servers]
    try:
        forms = []
        for i, (server, client) in enumerate(zip(two_fresh_servers, clients, strict=True)):
            link = SETUP_LINK.search(server.log())
            assert link, server.log()  # each process printed its own link: neither knows of the other
            page = await client.get(link.group(1))
            assert page.status_code == 200, page.text
            token = link.group(1).split("token=")[1]
            forms.append(
                {
                    "csrf_token": csrf_of(page.text),
                    "token": token,
                    "account": f"first-{i}",
                    "email": f"first-{i}@example.com",
                    "password": PASSWORD,
                    "password_again": PASSWORD,
                }
            )
        gate = asyncio.Event()

        async def submit(i: int) -> httpx.Response:
            await gate.wait()
            return await clients[i].post("/setup", data=forms[i])

        tasks = [asyncio.create_task(submit(i)) for i in range(2)]
        await asyncio.sleep(0.05)
        gate.set()
        responses = await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
    finally:
        for client in clients:
            await client.aclose()

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [303, 409], [(r.status_code, r.text[:500]) for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    assert "Setup is already done" in loser.text and "sign in" in loser.text.lower()

    engine = create_engine(empty_database)
    try:
        async with create_session_factory(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Tenant)) == 1
            assert await session.scalar(select(func.count()).select_from(User)) == 1
    finally:
        await engine.dispose()
    # The loser's link is dead as well: setup is over on every process.
    for server in two_fresh_servers:
        link = SETUP_LINK.search(server.log())
        assert link
        assert httpx.get(f"{server.url}{link.group(1)}", timeout=30).status_code == 404
