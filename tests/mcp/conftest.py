"""Fixtures for the MCP tests: a real `vibexp serve` per database, and the official SDK client talking to it over
HTTP with an API key, the way Claude Code, Cursor and VS Code do.

The server is configured like a cluster deployment would be: one extra allowed Host (the Service name), a short
usage flush interval so usage assertions do not wait long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from mcpkit import CAPPED_IDLE_SECONDS, CAPPED_KEEPALIVE_SECONDS, MCP_PATH, SERVICE_HOST
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory


@pytest.fixture(scope="session")
def mcp_servers() -> Iterator[dict[str, LiveServer]]:
    """One `vibexp serve` per database, started on first use, stopped at the end of the session."""
    servers: dict[str, LiveServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def server(
    database_url: str, mcp_servers: dict[str, LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    if database_url not in mcp_servers:
        env = {"VIBEXP_MCP_ALLOWED_HOSTS": SERVICE_HOST, "VIBEXP_USAGE_FLUSH_INTERVAL": "0.1"}
        mcp_servers[database_url] = LiveServer(database_url, env=env).start(tmp_path_factory.mktemp("mcp"))
    return mcp_servers[database_url]


@pytest.fixture
def sdk_server(
    database_url: str, mcp_servers: dict[str, LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    """The same server with the fast path off (``VIBEXP_MCP_FAST_PATH=false``): every POST takes the SDK's own
    transport. Started on first use per database, like ``server``."""
    name = f"{database_url} (SDK transport)"
    if name not in mcp_servers:
        env = {"VIBEXP_MCP_FAST_PATH": "false", "VIBEXP_USAGE_FLUSH_INTERVAL": "0.1"}
        mcp_servers[name] = LiveServer(database_url, env=env).start(tmp_path_factory.mktemp("mcp-sdk"))
    return mcp_servers[name]


@pytest.fixture
def mcp_url(server: LiveServer) -> str:
    return server.url + MCP_PATH


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the server's database, for making tenants and keys through the core services."""
    engine: AsyncEngine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def account(db: async_sessionmaker[AsyncSession]) -> Account:
    return await make_account(db)


@pytest.fixture
async def rest(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def capped(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with small listener caps, a short idle time and a short keep-alive (the live-stream tests of both
    protocol eras)."""
    env = {
        "VIBEXP_MCP_LISTENERS_PER_KEY": "2",
        "VIBEXP_MCP_LISTENERS_PER_PROCESS": "3",
        "VIBEXP_MCP_LISTEN_IDLE_SECONDS": str(CAPPED_IDLE_SECONDS),
        "VIBEXP_MCP_STREAM_KEEPALIVE_SECONDS": str(CAPPED_KEEPALIVE_SECONDS),
    }
    with LiveServer(database_url, env=env).start(tmp_path_factory.mktemp("capped")) as live:
        yield live


@pytest.fixture
def quick_server(
    database_url: str, mcp_servers: dict[str, LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server whose confirmations time out after one second."""
    name = f"{database_url} (1 s confirmations)"
    if name not in mcp_servers:
        env = {"VIBEXP_MCP_CONFIRM_TIMEOUT": "1"}
        mcp_servers[name] = LiveServer(database_url, env=env).start(tmp_path_factory.mktemp("mcp-quick"))
    yield mcp_servers[name]
