"""Text no database can take (a NUL, a lone surrogate) or no name needs (megabytes) in an MCP request gets a clean
error before any lookup, on every path: the fast path, the SDK's own handshake-era transport and its 2026-07-28
entry. Clean means: a JSON-RPC error (or, for a tool's arguments, a tool error the model can read) with a JSON-RPC
code, never code 0 and never a 500; no SQL, table or column names, tenant id, driver or codec text; nothing echoed
that a reply cannot carry; and no traceback in the server log, since a client's bad input is not a server fault.
A normal call right after still works.

A failure that is the server's own (a table gone missing) is ``-32603 Internal error``, logged once with its
traceback and never echoed.

The servers here are this module's own, not the suite's shared ones: the same poison also reaches the usage log
(the action name), and how the usage recorder copes with it is the usage recorder's business (issue 26, item 1);
it must not take the usage counts of other tests' servers down with it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER, encode_header_value
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
)
from mcpkit import MCP_PATH, connect, mcp_errors, ok, tool_error
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.databases import create_postgres_database, drop_postgres_database, sqlite_url
from helpers.factories import Account, make_account
from helpers.servers import LiveServer
from vibexp.core.content.schemas import PromptCreate
from vibexp.core.content.service import prompts
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.migrate import upgrade_async

JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = "2026-07-28"
#: The JSON-RPC codes a client's bad input may get (HEADER_MISMATCH: the 2026-07-28 entry's routing-header check).
CLIENT_FAULT_CODES = {PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, HEADER_MISMATCH}
#: What must never reach a client: SQL, driver and codec text.
LEAKS_EXACT = ("SELECT ", " FROM ", "WHERE ", "[SQL", "[parameters", "prompts.", "tenant_id")
LEAKS_ANY_CASE = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "traceback", "codec", "surrogates not allowed")
#: A log record's first line: ``2026-12-06 21:10:06,664 ERROR vibexp.api.errors: unhandled error``.
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?P<logger>[\w.]+): ", re.M)
#: The usage recorder's own handling of the same poison (a write of the action name) belongs to the usage issue.
NOT_OURS = ("vibexp.core.usage",)

NUL = "a\x00b"
SURROGATE = "a\ud800b"
UNICODE = "must be valid Unicode (it contains a lone surrogate code point)"


# -- sending one request each way ------------------------------------------------------------------------------
def _body(method: str, params: dict[str, Any], *, modern: bool = False) -> bytes:
    if modern:
        params = {**params, "_meta": {PROTOCOL_VERSION_META_KEY: MODERN, CLIENT_CAPABILITIES_META_KEY: {}}}
    # ensure_ascii: NUL and lone surrogates travel as \u escapes, exactly as a JSON encoder sends them.
    return json.dumps({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).encode()


def _header(value: str) -> str | None:
    """A routing-header value as a 2026-07-28 client encodes it; None when no client could send one."""
    try:
        return encode_header_value(value)
    except UnicodeEncodeError:
        return None


async def _post(url: str, key: str, way: str, method: str, params: dict[str, Any]) -> httpx.Response:
    """POST one request ``way``: ``plain`` (no version header), ``2025-06-18`` (the handshake-era header) or
    ``modern`` (a 2026-07-28 per-request envelope with its routing headers)."""
    headers = {**JSONRPC_HEADERS, "Authorization": f"Bearer {key}"}
    if way == "2025-06-18":
        headers[MCP_PROTOCOL_VERSION_HEADER] = way
    elif way == "modern":
        headers[MCP_PROTOCOL_VERSION_HEADER] = MODERN
        routing = {MCP_METHOD_HEADER: method}
        named = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}.get(method)
        if named is not None:
            routing[MCP_NAME_HEADER] = params[named]
        for name, value in routing.items():
            encoded = _header(value)
            if encoded is not None:
                headers[name] = encoded
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(url + MCP_PATH, content=_body(method, params, modern=way == "modern"), headers=headers)


def _clean(answer: httpx.Response, account: Account) -> dict[str, Any]:
    """The answer's JSON body, after checking it leaks nothing and is no server error."""
    assert answer.status_code != 500, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    assert len(answer.text) < 2_000, f"{len(answer.text)} characters: something was echoed"
    assert account.tenant.id not in answer.text, answer.text
    for leak in LEAKS_EXACT:
        assert leak not in answer.text, (leak, answer.text)
    for leak in LEAKS_ANY_CASE:
        assert leak not in answer.text.lower(), (leak, answer.text)
    body: dict[str, Any] = answer.json()
    return body


def _rpc_error(answer: httpx.Response, account: Account) -> dict[str, Any]:
    body = _clean(answer, account)
    assert "result" not in body and "error" in body, body
    error: dict[str, Any] = body["error"]
    assert error["code"] in CLIENT_FAULT_CODES, error
    assert answer.status_code in (200, 400, 404), answer.status_code
    return error


def _tool_error_text(answer: httpx.Response, account: Account) -> str:
    body = _clean(answer, account)
    assert answer.status_code == 200 and body["result"]["isError"] is True, body
    text_: str = body["result"]["content"][0]["text"]
    return text_


def _faults(log: str) -> list[str]:
    """ERROR-or-worse records (each may carry a traceback) of ``log``, but the usage recorder's."""
    return [
        f"{match['level']} {match['logger']}"
        for match in LOG_RECORD.finditer(log)
        if match["level"] in ("ERROR", "CRITICAL") and not match["logger"].startswith(NOT_OURS)
    ]


# -- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def poisoned() -> Iterator[dict[tuple[str, str], LiveServer]]:
    """This module's servers, by database and fast-path setting; stopped when the module is done."""
    servers: dict[tuple[str, str], LiveServer] = {}
    yield servers
    for live in servers.values():
        live.stop()


def _own_server(
    database_url: str, fast_path: str, poisoned: dict[tuple[str, str], LiveServer], tmp: pytest.TempPathFactory
) -> LiveServer:
    if (database_url, fast_path) not in poisoned:
        env = {"VIBEXP_MCP_FAST_PATH": fast_path, "VIBEXP_USAGE_FLUSH_INTERVAL": "0.1"}
        poisoned[(database_url, fast_path)] = LiveServer(database_url, env=env).start(tmp.mktemp("mcp-poison"))
    return poisoned[(database_url, fast_path)]


@pytest.fixture
def server(
    database_url: str, poisoned: dict[tuple[str, str], LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    """A server of this module's with the fast path on (the default)."""
    return _own_server(database_url, "true", poisoned, tmp_path_factory)


@pytest.fixture
def sdk_server(
    database_url: str, poisoned: dict[tuple[str, str], LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    """A server of this module's with the fast path off: every POST takes the SDK's own transport."""
    return _own_server(database_url, "false", poisoned, tmp_path_factory)


@pytest.fixture
async def seeded(db: async_sessionmaker[AsyncSession], account: Account) -> Account:
    async with session_scope(db) as session:
        await prompts.create(session, tenant_id=account.tenant.id, data=PromptCreate(name="ok", content="Fine {{x}}."))
    return account


async def _still_works(live: LiveServer, account: Account) -> None:
    for way in ("plain", "2025-06-18"):
        answer = await _post(live.url, account.key, way, "prompts/get", {"name": "ok", "arguments": {"x": "1"}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["messages"][0]["content"]["text"] == "Fine 1."
    async with connect(live.url + MCP_PATH, account.key) as client:
        assert (await ok(client, "get_prompt", {"name": "ok"}))["content"] == "Fine {{x}}."


# -- JSON-RPC level: method, names, URIs, cursors ---------------------------------------------------------------
async def test_nul_in_a_name_or_uri_is_invalid_params_before_any_lookup(
    server: LiveServer, sdk_server: LiveServer, seeded: Account
) -> None:
    cases = [
        ("prompts/get", {"name": NUL}, "name"),
        ("prompts/get", {"name": "ok", "arguments": {"x": NUL}}, "arguments.x"),
        ("resources/read", {"uri": f"artifact://p/{NUL}"}, "uri"),
        ("prompts/list", {"cursor": NUL}, "cursor"),
        ("resources/list", {"cursor": NUL}, "cursor"),
    ]
    for live in (server, sdk_server):
        before = len(live.log())
        for way in ("plain", "2025-06-18", "modern"):
            for method, params, field in cases:
                error = _rpc_error(await _post(live.url, seeded.key, way, method, params), seeded)
                assert error["code"] == INVALID_PARAMS, (way, method, error)
                assert error["message"].startswith(f"{field}: ") and "NUL" in error["message"], (way, method, error)
        assert _faults(live.log()[before:]) == []
        await _still_works(live, seeded)


async def test_overlong_names_are_refused_without_being_echoed(
    server: LiveServer, sdk_server: LiveServer, seeded: Account
) -> None:
    long = "a" * 100_000
    for live in (server, sdk_server):
        for way in ("plain", "2025-06-18"):
            for method, params in (
                ("prompts/get", {"name": long}),
                ("resources/read", {"uri": f"artifact://p/{long}"}),
                ("tools/call", {"name": long, "arguments": {}}),
                (long, {}),
            ):
                error = _rpc_error(await _post(live.url, seeded.key, way, method, params), seeded)
                assert error["code"] in (INVALID_PARAMS, INVALID_REQUEST), (way, method[:20], error)
                assert "at most" in error["message"], error
        await _still_works(live, seeded)


async def test_lone_surrogates_get_the_same_clean_error_on_every_path(
    server: LiveServer, sdk_server: LiveServer, seeded: Account
) -> None:
    cases = [
        (f"prompts/{SURROGATE}", {}),
        ("tools/call", {"name": f"get_prompt{SURROGATE}", "arguments": {}}),
        ("tools/call", {"name": "get_prompt", "arguments": {"name": SURROGATE}}),
        ("resources/read", {"uri": f"artifact://p/{SURROGATE}"}),
        ("prompts/get", {"name": SURROGATE}),
        ("prompts/get", {"name": "ok", "arguments": {SURROGATE: "x"}}),
        ("prompts/list", {"cursor": SURROGATE}),
    ]
    before = {live.url: len(live.log()) for live in (server, sdk_server)}
    for method, params in cases:
        answers: dict[tuple[bool, str], tuple[int, object]] = {}
        for live in (server, sdk_server):
            for way in ("plain", "2025-06-18", "modern"):
                answer = await _post(live.url, seeded.key, way, method, params)
                if way == "modern" and method == "tools/call" and params["name"] == "get_prompt":
                    # Valid JSON text to the 2026-07-28 entry (the handshake-era transport refuses it as a parse
                    # error): the tool's argument is the model's to fix, so a tool error in the guard's words.
                    outcome: object = _tool_error_text(answer, seeded)
                    assert outcome == "Error executing tool get_prompt: invalid_input: name: " + UNICODE, outcome
                else:
                    outcome = _rpc_error(answer, seeded)["code"]
                answers[(live is server, way)] = (answer.status_code, outcome)
        # The fast path answers exactly as the SDK's own transport does.
        for way in ("plain", "2025-06-18", "modern"):
            assert answers[(True, way)] == answers[(False, way)], (method, way, answers)
    for live in (server, sdk_server):
        assert _faults(live.log()[before[live.url] :]) == []
        await _still_works(live, seeded)


async def test_a_method_the_reply_could_not_carry_is_refused(server: LiveServer, seeded: Account) -> None:
    """Valid JSON text, but a method holding NUL: refused as an invalid request, the method not echoed."""
    for way in ("plain", "2025-06-18"):
        error = _rpc_error(await _post(server.url, seeded.key, way, "tools/\x00list", {}), seeded)
        assert error["code"] == INVALID_REQUEST and error["message"].startswith("method: "), error
        assert "data" not in error or "\x00" not in json.dumps(error["data"]), error
    await _still_works(server, seeded)


# -- tool arguments: tool errors the model can read -------------------------------------------------------------
TOOL_CASES = [
    ("get_prompt", {"name": NUL}, "name"),
    ("get_artifact", {"project": NUL, "slug": "x"}, "project"),
    ("get_artifact", {"project": "p", "slug": NUL}, "slug"),
    ("search_memories", {"query": NUL}, "query"),
    ("get_memory", {"id": NUL}, "id"),
    ("list_prompts", {"tag": NUL}, "tag"),
    ("list_artifacts", {"cursor": NUL}, "cursor"),
    ("get_prompt", {"name": "ok", "arguments": {"x": NUL}}, "arguments.x"),
]


async def test_nul_in_tool_arguments_is_a_tool_error_naming_the_argument(
    server: LiveServer, sdk_server: LiveServer, seeded: Account
) -> None:
    for live in (server, sdk_server):
        before = len(live.log())
        for way in ("plain", "2025-06-18", "modern"):
            for tool, arguments, field in TOOL_CASES:
                answer = await _post(live.url, seeded.key, way, "tools/call", {"name": tool, "arguments": arguments})
                message = _tool_error_text(answer, seeded)
                expected = f"Error executing tool {tool}: invalid_input: {field}: must not contain the NUL character"
                assert message.startswith(expected), (way, message)
        async with connect(live.url + MCP_PATH, seeded.key) as client:  # the SDK's client, 2026-07-28
            for tool, arguments, field in TOOL_CASES:
                assert f"invalid_input: {field}: must not contain" in await tool_error(client, tool, arguments)
            with pytest.raises(BaseException) as refused:
                await client.get_prompt(NUL)
            errors = mcp_errors(refused.value)
            assert errors and errors[0].error.code == INVALID_PARAMS, refused.value
            assert errors[0].error.message.startswith("name: "), errors[0].error
        assert _faults(live.log()[before:]) == []
        await _still_works(live, seeded)


# -- the server's own failure: -32603, logged once, never echoed --------------------------------------------------
@pytest.fixture
async def broken_database(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Account]]:
    """A database of the same kind whose prompts table has gone (a bad migration, a mistaken DBA): every prompt
    lookup fails with a database error that names the SQL, the table and the tenant."""
    url = sqlite_url(tmp_path) if database_url.startswith("sqlite") else await create_postgres_database()
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            account = await make_account(create_session_factory(engine))
            async with engine.begin() as conn:
                await conn.execute(text(f"ALTER TABLE prompts RENAME TO prompts_gone_{secrets.token_hex(3)}"))
        finally:
            await engine.dispose()
        yield url, account
    finally:
        if not url.startswith("sqlite"):
            await drop_postgres_database(url)


async def test_an_unexpected_failure_is_internal_error_logged_once_and_never_echoed(
    broken_database: tuple[str, Account], tmp_path: Path
) -> None:
    url, account = broken_database
    for fast_path in ("true", "false"):
        env = {"VIBEXP_MCP_FAST_PATH": fast_path, "VIBEXP_USAGE_FLUSH_INTERVAL": "0.1"}
        log_dir = tmp_path / f"fast-path-{fast_path}"
        log_dir.mkdir()
        with LiveServer(url, env=env).start(log_dir) as live:
            before = len(live.log())
            requests = [
                (way, method, params)
                for way in ("plain", "2025-06-18", "modern")
                for method, params in (("prompts/get", {"name": "review"}), ("prompts/list", {}))
            ]
            for way, method, params in requests:
                answer = await _post(live.url, account.key, way, method, params)
                body = _clean(answer, account)
                assert answer.status_code == 200, (way, method, answer.text)
                assert body["error"]["code"] == INTERNAL_ERROR, (way, method, body)
                assert body["error"]["message"] == "Internal error", body
                assert "data" not in body["error"], body
            # A tool's crash is a tool error without the crash's text (the SDK's own rule), logged once too.
            call = {"name": "get_prompt", "arguments": {"name": "review"}}
            answer = await _post(live.url, account.key, "plain", "tools/call", call)
            assert _tool_error_text(answer, account) == "Error executing tool get_prompt"
            log = live.log()[before:]
            # One ERROR record per failed request, each with the traceback, none from the HTTP layer (no 500).
            assert len(_faults(log)) == len(requests) + 1, _faults(log)
            assert "Exception in ASGI application" not in log and "unhandled error" not in log
            assert log.count("Traceback (most recent call last)") >= len(requests) + 1
