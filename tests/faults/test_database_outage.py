"""A database outage under load, on a private PostgreSQL cluster this test starts, stops and starts again.

Two server processes serve REST, MCP and dashboard requests from several concurrent clients while PostgreSQL is
stopped and started. While it is down every answer is ``503 service_unavailable`` with ``Retry-After`` and the
JSON error body (never a 500), ``/readyz`` is 503, and the servers log the outage, not a traceback per request.
When it is back they serve again by themselves within seconds, and every write acknowledged with a 2xx is stored.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select

from dashboard.pages import Person, make_person, sign_in
from helpers.fixtures import start_servers
from helpers.private_postgres import PrivatePostgres
from helpers.servers import LiveServer
from vibexp.core.content.models import Memory
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade_async

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CLIENTS_PER_SERVER = 3
#: Bounds of every phase, in seconds.
BEFORE, OUTAGE, RECOVERY_LIMIT, AFTER = 2.0, 4.0, 15.0, 2.0


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


@dataclass
class Load:
    """What the clients saw: statuses by phase, every acknowledged write, and refusals that broke the rules."""

    phase: str = "before"
    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    acknowledged: set[str] = field(default_factory=set)
    bad: list[str] = field(default_factory=list)
    failed_by_server: Counter[str] = field(default_factory=Counter)
    stop: bool = False

    def saw(self, kind: str, server: LiveServer, response: httpx.Response) -> None:
        status = response.status_code
        self.statuses[(self.phase, kind, status)] += 1
        if status >= 500 and status != 503:
            self.bad.append(f"{kind} {status}: {response.text[:200]}")
        if status == 503:
            self.failed_by_server[server.url] += 1
            body = response.json()
            if body.get("error", {}).get("code") != "service_unavailable" or "retry-after" not in response.headers:
                self.bad.append(f"{kind} 503 without the error body or Retry-After: {response.text[:200]}")


async def _client(load: Load, server: LiveServer, key: str, browser: httpx.AsyncClient, n: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    i = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        while not load.stop and i < 2000:  # bounded in count as well as by the test's clock
            i += 1
            content = f"client {n} write {i}"
            try:
                write = await http.post("/api/v1/memories", json={"content": content}, headers=headers)
                load.saw("rest-write", server, write)
                if write.status_code == 201:
                    load.acknowledged.add(content)
                load.saw("rest-read", server, await http.get("/api/v1/memories?limit=2", headers=headers))
                body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "list_memories"}}
                mcp = await http.post(
                    "/mcp/v1/common", content=json.dumps(body), headers={**headers, **JSONRPC_HEADERS}
                )
                load.saw("mcp", server, mcp)
                if mcp.status_code == 200 and mcp.json().get("result", {}).get("isError"):
                    load.bad.append(f"mcp tool error instead of 503: {mcp.text[:200]}")
                load.saw("dashboard", server, await browser.get("/memories"))
            except httpx.TransportError as exc:  # a refused or reset connection would be a failure too
                load.bad.append(f"transport error: {exc!r}")
            await asyncio.sleep(0.02)


async def _readyz(servers: tuple[LiveServer, ...]) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as http:
        return [(await http.get(f"{s.url}/readyz")).status_code for s in servers]


#: Background loops of a server process; each logs an outage once (with a traceback), then a line a minute.
BACKGROUND_LOGGERS = ("vibexp.core.keys.verifier", "vibexp.core.usage.recorder", "vibexp.core.alerts.sender")


def _outage_log_lines(server: LiveServer, start: int, end: int) -> dict[str, int]:
    """Lines the server logged between two offsets of its log, by kind."""
    raw = server.log()[start:end].splitlines()
    kinds: Counter[str] = Counter()
    in_traceback = False
    for line in raw:
        if re.match(r"^\d{4}-\d\d-\d\d ", line):
            in_traceback = False
            if "uvicorn.access" in line:
                kinds["access 503" if line.rstrip().endswith(" 503") else "access other"] += 1
            elif any(task in line for task in BACKGROUND_LOGGERS):
                kinds["background"] += 1  # the key poll, usage flush, webhook sender: once per outage, with a traceback
                in_traceback = True
            else:
                kinds["other"] += 1
        else:
            kinds["background" if in_traceback else "other"] += 1
    kinds["total"] = len(raw)
    return dict(kinds)


async def test_postgres_stop_and_start_under_load_is_503_then_recovers_losing_nothing(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pg = private_postgres
    await pg.create_database()
    await upgrade_async(pg.url)
    engine = create_engine(pg.url)
    factory = create_session_factory(engine)
    try:
        person: Person = await make_person(factory)
        logs = tmp_path_factory.mktemp("outage-logs")
        servers = (LiveServer(pg.url), LiveServer(pg.url))
        start_servers(servers, logs)
        with servers[0], servers[1]:
            browsers = [httpx.AsyncClient(base_url=s.url, timeout=10) for s in servers]
            try:
                for browser in browsers:
                    await sign_in(browser, person)
                load = Load()
                tasks = [
                    asyncio.create_task(_client(load, server, person.account.key, browsers[s], s * 10 + c))
                    for s, server in enumerate(servers)
                    for c in range(CLIENTS_PER_SERVER)
                ]
                await asyncio.sleep(BEFORE)

                load.phase = "outage"
                offsets = [len(s.log()) for s in servers]
                failed_before = Counter(load.failed_by_server)
                pg.stop()
                stopped = time.monotonic()
                await asyncio.sleep(0.5)  # requests in flight when it stopped settle
                settled = Counter(load.statuses)
                await asyncio.sleep(OUTAGE - 0.5)
                assert await _readyz(servers) == [503, 503]

                load.phase = "recovery"
                pg.start()
                restarted = time.monotonic()
                recovered: dict[str, float] = {}
                async with httpx.AsyncClient(timeout=10) as http:
                    while len(recovered) < 2 and time.monotonic() - restarted < RECOVERY_LIMIT:
                        for server in servers:
                            response = await http.get(f"{server.url}/api/v1/account", headers=person.account.headers)
                            if response.status_code == 200 and server.url not in recovered:
                                recovered[server.url] = time.monotonic() - restarted
                        await asyncio.sleep(0.05)
                assert len(recovered) == 2, f"not serving again {RECOVERY_LIMIT} s after PostgreSQL restarted"
                offsets_end = [len(s.log()) for s in servers]
                load.phase = "after"
                await asyncio.sleep(AFTER)
                load.stop = True
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
                assert await _readyz(servers) == [200, 200]
            finally:
                for browser in browsers:
                    await browser.aclose()

        # Never a 500, a tool error or a reset connection; 503s had the body and Retry-After.
        assert not load.bad, load.bad[:5]
        # Once the outage had settled, every kind of request was refused with 503 only.
        during = Counter({k: v - settled.get(k, 0) for k, v in load.statuses.items() if k[0] == "outage"})
        for kind in ("rest-write", "rest-read", "mcp", "dashboard"):
            assert during[("outage", kind, 503)] > 0, (kind, during)
            assert sum(v for (phase, k, st), v in during.items() if k == kind and st != 503) == 0, (kind, during)
        for kind in ("rest-write", "rest-read", "mcp", "dashboard"):
            assert load.statuses[("after", kind, 200 if kind != "rest-write" else 201)] > 0, load.statuses

        # At most one log line per failed request: the access line; the outage itself is a few lines per process.
        report = []
        for server, start, end in zip(servers, offsets, offsets_end, strict=True):
            lines = _outage_log_lines(server, start, end)
            failed = load.failed_by_server[server.url] - failed_before[server.url]
            assert failed > 20, failed
            assert lines.get("other", 0) <= 5, server.log()[start:end][-3000:]
            assert lines.get("access 503", 0) + lines.get("other", 0) <= failed + 5, (lines, failed)
            assert "Exception in ASGI application" not in server.log()
            report.append(f"{failed} failed requests, log lines {lines}")
        print(f"outage: stopped {restarted - stopped:.1f} s; recovered after {recovered}; " + "; ".join(report))

        # Every acknowledged write is stored (this engine's pooled connections died with the old server).
        await engine.dispose()
        async with factory() as session:
            stored = set(
                await session.scalars(select(Memory.content).where(Memory.tenant_id == person.account.tenant.id))
            )
        missing = load.acknowledged - stored
        assert not missing, sorted(missing)[:5]
        assert len(load.acknowledged) > 10
    finally:
        await engine.dispose()
