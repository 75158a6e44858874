"""Every way an MCP request can fail: bad tool arguments, missing objects, keys, limits, hosts and methods."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcpkit import MCP_PATH, SERVICE_HOST, connect, mcp_errors, ok, tool_error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account, make_key
from helpers.servers import LiveServer
from helpers.windows import inside_one_hour_window

JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


def error_code(resp: httpx.Response) -> str:
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return str(body["error"]["code"])


async def test_bad_tool_calls_are_tool_errors_the_model_can_read(mcp_url: str, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        text = await tool_error(mcp, "create_prompt", {"name": "has space", "content": ""})
        assert "invalid_input" in text and "name:" in text and "content:" in text
        assert "pydantic" not in text and "has space" not in text  # no library boilerplate, no echoed values
        assert "invalid_input" in await tool_error(mcp, "create_prompt", {"content": "no name"})
        assert "invalid_input" in await tool_error(mcp, "list_memories", {"limit": 1000})
        assert "invalid_input" in await tool_error(mcp, "save_memory", {"content": "x", "tags": ["t"] * 33})
        assert "invalid_input" in await tool_error(mcp, "get_artifact", {"project": "../etc", "slug": "passwd"})
        assert "invalid cursor" in await tool_error(mcp, "list_prompts", {"cursor": "not-a-cursor!"})
        assert "Unknown tool" in await tool_error(mcp, "drop_database", {})

        assert "not_found" in await tool_error(mcp, "get_prompt", {"name": "missing"})
        assert "not_found" in await tool_error(mcp, "get_memory", {"id": "0190aaaa-0000-7000-8000-000000000000"})
        assert "not_found" in await tool_error(mcp, "delete_artifact", {"project": "p", "slug": "s"})
        assert "not_found" in await tool_error(
            mcp, "save_artifact", {"project": "p", "slug": "s", "content": "x", "expected_version": 1}
        )

        await ok(mcp, "create_prompt", {"name": "dup", "content": "Hello {{who}}"})
        assert "already_exists" in await tool_error(mcp, "create_prompt", {"name": "dup", "content": "again"})
        assert "precondition_failed" in await tool_error(
            mcp, "update_prompt", {"name": "dup", "content": "new", "expected_version": 7}
        )
        missing = await tool_error(mcp, "get_prompt", {"name": "dup", "arguments": {}})
        assert "invalid_input" in missing and "who" in missing
        # A failed call changed nothing.
        assert (await ok(mcp, "get_prompt", {"name": "dup"}))["version"] == 1


async def test_requests_without_a_valid_key_get_401_json_and_www_authenticate(
    server: LiveServer, rest: httpx.AsyncClient, mcp_url: str
) -> None:
    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers=JSONRPC_HEADERS)
    assert resp.status_code == 401 and error_code(resp) == "invalid_api_key"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    for bad in ("Bearer vib_" + "0" * 64, "Bearer not-a-key", "Basic dXNlcjpwYXNz"):
        resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**JSONRPC_HEADERS, "Authorization": bad})
        assert resp.status_code == 401 and error_code(resp) == "invalid_api_key", bad
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
        assert "resource_metadata" not in resp.headers["www-authenticate"]

    with pytest.raises(BaseException) as excinfo:
        async with connect(mcp_url, "vib_" + "1" * 64) as mcp:
            await mcp.list_tools()
    assert mcp_errors(excinfo.value) or isinstance(excinfo.value, Exception)


async def test_oauth_discovery_probes_get_a_clean_404(rest: httpx.AsyncClient) -> None:
    """Claude Code and others probe these before using the configured header: no OAuth metadata is advertised."""
    for path in (
        "/.well-known/oauth-protected-resource/mcp/v1/common",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/mcp/v1/common",
        "/.well-known/openid-configuration",
        "/mcp/v1/common/.well-known/oauth-protected-resource",
    ):
        resp = await rest.get(path)
        assert resp.status_code in (401, 404), path  # under /mcp a key is needed first; elsewhere nothing exists
        error_code(resp)
        assert "authorization_servers" not in resp.text and "issuer" not in resp.text


async def test_key_revoked_mid_session_is_refused_on_its_next_request(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    admin_key = await make_key(db, tenant_id=account.tenant.id, name="admin")
    async with connect(mcp_url, account.key) as mcp:
        await ok(mcp, "list_prompts", {})
        resp = await rest.delete(f"/api/v1/api-keys/{account.key_id}", headers={"Authorization": f"Bearer {admin_key}"})
        assert resp.status_code == 200 and resp.json()["status"] == "revoked"
        with pytest.raises(BaseException) as excinfo:
            await mcp.call_tool("list_prompts", {})
        assert mcp_errors(excinfo.value), excinfo.value

    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**JSONRPC_HEADERS, **account.headers})
    assert resp.status_code == 401 and error_code(resp) == "invalid_api_key"
    assert "revoked" in resp.json()["error"]["message"].lower()


async def test_suspended_account_gets_403(rest: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]) -> None:
    suspended = await make_account(db, suspended=True)
    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**JSONRPC_HEADERS, **suspended.headers})
    assert resp.status_code == 403 and error_code(resp) == "account_suspended"


async def test_rate_limit_applies_to_mcp_requests(
    mcp_url: str, rest: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await inside_one_hour_window()  # the counts below must all fall in one hourly window
    limited = await make_account(db, rate_limit=4)
    headers = {**JSONRPC_HEADERS, **limited.headers}
    for remaining in (3, 2, 1, 0):
        resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-ratelimit-limit"] == "4"
        assert resp.headers["x-ratelimit-remaining"] == str(remaining)
        assert resp.headers["ratelimit-policy"] == '"hourly";q=4;w=3600'
        assert resp.headers["ratelimit"].startswith(f'"hourly";r={remaining};')
        assert len(resp.json()["result"]["tools"]) == 15

    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers=headers)
    assert resp.status_code == 429 and error_code(resp) == "rate_limited"
    assert int(resp.headers["retry-after"]) > 0
    assert resp.headers["x-ratelimit-remaining"] == "0"
    assert int(resp.headers["x-ratelimit-reset"]) > 0

    with pytest.raises(BaseException):  # noqa: B017 - the SDK client cannot even connect while limited
        async with connect(mcp_url, limited.key) as mcp:
            await mcp.list_tools()


async def test_host_origin_method_and_content_type_checks_answer_json(
    rest: httpx.AsyncClient, account: Account
) -> None:
    headers = {**JSONRPC_HEADERS, **account.headers}
    # The configured Service host (VIBEXP_MCP_ALLOWED_HOSTS) and localhost on any port are accepted.
    for host in (SERVICE_HOST, "localhost:9999", "127.0.0.1:1"):
        resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**headers, "Host": host})
        assert resp.status_code == 200, (host, resp.text)
    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**headers, "Origin": "http://localhost:6274"})
    assert resp.status_code == 200

    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**headers, "Host": "attacker.example"})
    assert resp.status_code == 421 and error_code(resp) == "misdirected_request"
    resp = await rest.post(MCP_PATH, json=TOOLS_LIST, headers={**headers, "Origin": "https://attacker.example"})
    assert resp.status_code == 403 and error_code(resp) == "forbidden"

    # A GET that accepts text/event-stream is the change-notification stream (tests/mcp/test_mcp_legacy_stream.py).
    resp = await rest.get(MCP_PATH, headers={**account.headers, "Accept": "application/json"})
    assert resp.status_code == 405 and error_code(resp) == "method_not_allowed"
    assert resp.headers["allow"] == "GET, POST"
    resp = await rest.get("/mcp/v1/other", headers=account.headers)
    assert resp.status_code == 404 and error_code(resp) == "not_found"
    resp = await rest.post(MCP_PATH, content=b"x", headers={**account.headers, "Content-Type": "text/plain"})
    assert resp.status_code == 400 and error_code(resp) == "bad_request"
    resp = await rest.post(MCP_PATH, content=b"{not json", headers=headers)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32700  # JSON-RPC parse error, as the spec says
