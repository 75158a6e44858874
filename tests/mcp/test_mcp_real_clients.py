"""The real clients people connect with, against a live `vibexp serve` over HTTP with a read-only key (issue 14):
the MCP Inspector CLI and Claude Code, the npm packages tests/clients/package-lock.json pins (`make clients`).

Nothing is stubbed and nothing is downloaded here: both run from tests/clients/node_modules, each with a HOME of
its own (their config, caches and logs land there, never in the user's), with their update checks and telemetry
off. Claude Code has no model access here, so only its `mcp` subcommands run: `claude mcp list` connects to each
configured server (the protocol handshake and tools/list) to report its health, which needs no Anthropic API.

Keys reach the clients in their arguments, the way the README tells people to configure them; every output and
failure message is redacted before an assertion can show it (`claude mcp get`, for one, prints headers in clear).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcpkit import READ_TOOLS, confirming_key, connect, tool_error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account
from helpers.servers import REPO
from vibexp.api.mcp.tools import TOOL_NAMES
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys

#: The npm clients (`make clients`); `make test-fast` leaves these out.
pytestmark = pytest.mark.clients

BIN = REPO / "tests" / "clients" / "node_modules" / ".bin"
#: The longest one client invocation may take (each is about a second; a busy CI machine is slower).
CLIENT_TIMEOUT = 90.0
#: Well formed, never issued: its checksum is wrong, so the server refuses it before any lookup.
BOGUS_KEY = "vib_" + "0" * 64


def installed(name: str) -> Path:
    """An installed client's executable; a missing one fails the test (a skipped suite in CI hides a defect)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make clients` (npm ci of tests/clients)", pytrace=False)
    return path


@dataclass(frozen=True)
class Run:
    """One finished client invocation, keys already redacted from everything it printed."""

    command: str
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"`{self.command}` exited {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class Clients:
    """Runs the client executables in a private HOME, redacting the keys they are given."""

    def __init__(self, home: Path, secrets: Sequence[str]) -> None:
        self.home = home
        self._secrets = list(secrets)
        # The machine's own client settings and credentials (CI's environment, a developer's shell) stay out.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC", "MCP_"))}
        self._env = {
            **inherited,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }

    def hide(self, secret: str) -> None:
        """Redact one more key from what the clients print."""
        self._secrets.append(secret)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<key>")
        return text

    async def run(self, argv: Sequence[str]) -> Run:
        command = self.redact(" ".join(str(a) for a in argv))

        def blocking() -> Run:
            try:
                done = subprocess.run(
                    list(argv),
                    stdin=subprocess.DEVNULL,  # nothing waits on a terminal that is not there
                    capture_output=True,
                    text=True,
                    env=self._env,
                    cwd=self.home,
                    timeout=CLIENT_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:  # its message would carry the arguments, key and all
                raise AssertionError(f"`{command}` did not finish in {CLIENT_TIMEOUT:.0f}s") from None
            return Run(command, done.returncode, self.redact(done.stdout), self.redact(done.stderr))

        return await asyncio.to_thread(blocking)


class InspectorCli:
    """``mcp-inspector --cli`` against one server URL, one key per call, JSON output."""

    def __init__(self, clients: Clients, url: str) -> None:
        self._clients = clients
        self._url = url
        self._exe = installed("mcp-inspector")

    async def version(self) -> str:
        return (await self._clients.run(["node", str(self._exe), "--version"])).stdout.strip()

    async def run(self, key: str, method: str, *args: str) -> Run:
        return await self._clients.run(
            [
                *("node", str(self._exe), "--cli", self._url, "--transport", "http"),
                *("--header", f"Authorization: Bearer {key}", "--format", "json", "--method", method, *args),
            ]
        )

    async def result(self, key: str, method: str, *args: str) -> dict[str, Any]:
        """The call's ``result``; it must succeed."""
        run = await self.run(key, method, *args)
        assert run.code == 0, run
        body: dict[str, Any] = json.loads(run.stdout)
        assert "result" in body, run
        result: dict[str, Any] = body["result"]
        return result

    async def error(self, key: str, method: str, *args: str) -> dict[str, Any]:
        """The error envelope of a call that must fail (on stderr with ``--format json``)."""
        run = await self.run(key, method, *args)
        assert run.code != 0, run
        body: dict[str, Any] = json.loads(run.stderr.strip().splitlines()[-1])
        assert "error" in body, run
        error: dict[str, Any] = body["error"]
        return error


@dataclass(frozen=True)
class Key:
    id: str
    plaintext: str


async def scoped_key(db: async_sessionmaker[AsyncSession], account: Account, name: str, scopes: list[str]) -> Key:
    async with session_scope(db) as session:
        new = await keys.create_key(
            session,
            actor=TEST_ACTOR,
            tenant_id=account.tenant.id,
            name=name,
            source="cli",
            permissions=keys.KeyPermissions(scopes=scopes),
        )
    return Key(id=new.record.id, plaintext=new.plaintext)


async def usage_until(
    rest: httpx.AsyncClient, account: Account, key: Key, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The key's recorded actions once ``done`` holds for them, or as they are after 10 s (flushed in the
    background). Read with the account's full key: the read-only one may not read usage."""
    deadline = time.monotonic() + 10
    while True:
        resp = await rest.get(f"/api/v1/api-keys/{key.id}/usage?limit=100", headers=account.headers)
        assert resp.status_code == 200, resp.text
        actions: list[dict[str, Any]] = resp.json()["actions"]
        if done(actions) or time.monotonic() > deadline:
            return actions
        await asyncio.sleep(0.1)


@pytest.fixture
async def read_only(db: async_sessionmaker[AsyncSession], account: Account) -> Key:
    return await scoped_key(db, account, "Work Laptop - read only", ["read"])


@pytest.fixture
def clients(tmp_path: Path, account: Account, read_only: Key) -> Clients:
    home = tmp_path / "home"
    home.mkdir()
    return Clients(home, secrets=[account.key, read_only.plaintext])


@pytest.fixture
def inspector(clients: Clients, mcp_url: str) -> InspectorCli:
    return InspectorCli(clients, mcp_url)


async def test_inspector_lists_only_the_read_tools_to_a_read_only_key(
    inspector: InspectorCli, account: Account, read_only: Key
) -> None:
    assert await inspector.version() == "2.12.0"
    full = (await inspector.result(account.key, "tools/list"))["tools"]
    assert [t["name"] for t in full] == list(TOOL_NAMES)
    assert len(full) == 15
    assert {t["name"] for t in full if not t["annotations"]["readOnlyHint"]} == set(TOOL_NAMES) - set(READ_TOOLS)

    listed = (await inspector.result(read_only.plaintext, "tools/list"))["tools"]
    assert [t["name"] for t in listed] == READ_TOOLS
    assert all(t["annotations"]["readOnlyHint"] is True for t in listed), listed


async def test_a_read_only_key_cannot_save_a_memory(
    inspector: InspectorCli, mcp_url: str, account: Account, read_only: Key, rest: httpx.AsyncClient
) -> None:
    # The Inspector calls only a tool the server listed, and save_memory is not listed for this key: it refuses
    # without calling it.
    refused = await inspector.error(
        read_only.plaintext, "tools/call", "--tool-name", "save_memory", "--tool-arg", "content=x"
    )
    assert refused["code"] == "tool_not_found", refused
    assert "save_memory" in refused["message"], refused
    # A client that calls it anyway (the official SDK does not check the list) gets a tool error naming the scope.
    async with connect(mcp_url, read_only.plaintext) as mcp:
        text = await tool_error(mcp, "save_memory", {"content": "x"})
    assert text.startswith("insufficient_scope:"), text
    assert "memories:write" in text, text

    # The full key is shown the tool and saves through the same client: the refusal was the key's scopes'.
    saved = await inspector.result(account.key, "tools/call", "--tool-name", "save_memory", "--tool-arg", "content=y")
    assert saved.get("isError") is not True, saved
    resp = await rest.get("/api/v1/memories", headers=account.headers)
    assert resp.status_code == 200, resp.text
    assert [m["content"] for m in resp.json()["items"]] == ["y"]


async def test_a_read_only_key_lists_prompts_and_resources(
    inspector: InspectorCli,
    clients: Clients,
    db: async_sessionmaker[AsyncSession],
    account: Account,
    read_only: Key,
    rest: httpx.AsyncClient,
) -> None:
    prompt = {"name": "daily", "content": "Plan {{task}}"}
    assert (await rest.post("/api/v1/prompts", headers=account.headers, json=prompt)).status_code == 201
    artifact = {"project": "notes", "slug": "todo", "title": "To do", "content": "ship it"}
    assert (await rest.post("/api/v1/artifacts", headers=account.headers, json=artifact)).status_code == 201

    prompts = (await inspector.result(read_only.plaintext, "prompts/list"))["prompts"]
    assert [p["name"] for p in prompts] == ["daily"]
    resources = (await inspector.result(read_only.plaintext, "resources/list"))["resources"]
    assert [r["uri"] for r in resources] == ["artifact://notes/todo"]

    # A key without those read scopes is refused each, with the scope named (a JSON-RPC error, -32003).
    memories_only = await scoped_key(db, account, "memories only", ["memories:read"])
    clients.hide(memories_only.plaintext)
    assert "prompts:read" in (await inspector.error(memories_only.plaintext, "prompts/list"))["message"]
    assert "artifacts:read" in (await inspector.error(memories_only.plaintext, "resources/list"))["message"]


async def test_claude_code_connects_with_a_read_only_key(
    clients: Clients, mcp_url: str, account: Account, read_only: Key, rest: httpx.AsyncClient
) -> None:
    claude = installed("claude")
    assert "2.1.332" in (await clients.run([claude, "--version"])).stdout
    # The README's command, and one more server whose key the server refuses: `mcp list` must tell them apart.
    for name, key in (("vibexp_io_common", read_only.plaintext), ("vibexp_bogus", BOGUS_KEY)):
        added = await clients.run(
            [claude, "mcp", "add", "--transport", "http", name, mcp_url, "--header", f"Authorization: Bearer {key}"]
        )
        assert added.code == 0, added
    # And the OAuth path with no header (README "Connect with OAuth"): Claude Code finds the authorization server
    # from the 401 and says the server needs a sign-in, while the keyed /mcp/v1/common stays connected beside it.
    connect_url = mcp_url.replace("/mcp/v1/common", "/mcp/v1/connect")
    added = await clients.run([claude, "mcp", "add", "--transport", "http", "vibexp_oauth", connect_url])
    assert added.code == 0, added

    listed = await clients.run([claude, "mcp", "list"])
    assert listed.code == 0, listed
    status = {line.split(":", 1)[0]: line for line in listed.stdout.splitlines() if line.startswith("vibexp_")}
    assert set(status) == {"vibexp_io_common", "vibexp_bogus", "vibexp_oauth"}, listed
    assert status["vibexp_io_common"].endswith("✔ Connected"), listed
    assert "Failed to connect" in status["vibexp_bogus"] and "HTTP 401" in status["vibexp_bogus"], listed
    assert status["vibexp_oauth"].endswith("Needs authentication"), listed

    # The server saw Claude Code (by its User-Agent) use the read-only key; a health check is protocol set-up
    # (initialize, tools/list), which the usage counts but does not show as something the agent did.
    deadline = time.monotonic() + 10
    while True:
        usage = (await rest.get(f"/api/v1/api-keys/{read_only.id}/usage", headers=account.headers)).json()
        seen = "claude_code" in {c["tool_type"] for c in usage["clients"]} and usage["request_count"] >= 2
        if seen or time.monotonic() > deadline:  # its requests may reach the usage log in separate flushes
            break
        await asyncio.sleep(0.1)
    assert [c["tool_type"] for c in usage["clients"]] == ["claude_code"], usage
    assert usage["request_count"] >= 2 and usage["actions"] == [], usage


async def test_claude_code_connects_with_a_key_that_asks_before_destroying(
    clients: Clients, mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    """Such a key's ``initialize`` answer carries a sealed ``Mcp-Session-Id``, which Claude Code echoes on every
    request after it (handshake.py): it stays connected."""
    claude = installed("claude")
    key = await confirming_key(rest, account)
    clients.hide(key)
    header = f"Authorization: Bearer {key}"
    added = await clients.run([claude, "mcp", "add", "--transport", "http", "vibexp_asks", mcp_url, "--header", header])
    assert added.code == 0, added
    listed = await clients.run([claude, "mcp", "list"])
    assert listed.code == 0, listed
    status = [line for line in listed.stdout.splitlines() if line.startswith("vibexp_asks:")]
    assert len(status) == 1 and status[0].endswith("✔ Connected"), listed
