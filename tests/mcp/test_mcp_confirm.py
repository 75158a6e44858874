"""Confirmation of destructive tools (``confirm_destructive``), over real HTTP with the official SDK client.

A key with ``confirm_destructive`` makes ``delete_*`` and overwriting writes ask the person by form elicitation
(the 2026-07-28 multi-round-trip: ``InputRequiredResult``, then the same call carrying the answer), and do nothing
unless accepted; declined or cancelled is a clear tool result; a forged, malformed or late answer is a protocol
error; a client that declared no elicitation does not see those tools. The key field itself: REST create, update,
rotate and JSON.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from mcp_types import (
    CallToolResult,
    ClientCapabilities,
    ElicitationCapability,
    FormElicitationCapability,
    TextContent,
    UrlElicitationCapability,
)
from mcpkit import MCP_PATH, Person, confirming_key, mcp_errors, ok, tool_error
from mcpkit import connect as connect_as

from helpers.factories import Account
from helpers.servers import LiveServer
from mcp import Client
from vibexp.api.mcp.confirm import CONFIRMED_TOOLS, can_elicit
from vibexp.api.mcp.tools import _TOOLS, DELETE, OVERWRITE, TOOL_NAMES


def connect(
    url: str, key: str, person: Person | None = None, *, mode: Any = "auto"
) -> AbstractAsyncContextManager[Client]:
    return connect_as(url, key, person=person, mode=mode)


async def _mint(rest: httpx.AsyncClient, account: Account, **body: Any) -> dict[str, Any]:
    response = await rest.post("/api/v1/api-keys", json={"name": "confirming", **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- the list of tools that ask, tied to the catalogue ---------------------------------------------------------------
def test_the_tools_that_ask_are_exactly_the_destructive_ones() -> None:
    destructive = {options["name"] for _, options in _TOOLS if options["annotations"] in (DELETE, OVERWRITE)}
    assert destructive == CONFIRMED_TOOLS
    assert {name for name in TOOL_NAMES if name.startswith("delete_")} <= CONFIRMED_TOOLS


def test_which_declared_capabilities_can_show_a_form() -> None:
    form, url = FormElicitationCapability(), UrlElicitationCapability()
    assert can_elicit(ClientCapabilities(elicitation=ElicitationCapability()))  # 2025-06-18: {} is form
    assert can_elicit(ClientCapabilities(elicitation=ElicitationCapability(form=form)))
    assert not can_elicit(ClientCapabilities(elicitation=ElicitationCapability(url=url)))
    assert not can_elicit(ClientCapabilities())
    assert not can_elicit(None)


# -- the key field ---------------------------------------------------------------------------------------------------
async def test_rest_creates_updates_rotates_and_shows_confirm_destructive(
    rest: httpx.AsyncClient, account: Account
) -> None:
    plain = await _mint(rest, account)
    assert plain["confirm_destructive"] is False
    created = await _mint(rest, account, confirm_destructive=True)
    assert created["confirm_destructive"] is True
    key_id = created["id"]
    got = await rest.get(f"/api/v1/api-keys/{key_id}", headers=account.headers)
    assert got.json()["confirm_destructive"] is True
    changed = await rest.patch(
        f"/api/v1/api-keys/{key_id}", json={"confirm_destructive": False}, headers=account.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["confirm_destructive"] is False and changed.json()["name"] == "confirming"
    renamed = await rest.patch(f"/api/v1/api-keys/{key_id}", json={"name": "renamed"}, headers=account.headers)
    assert renamed.json()["confirm_destructive"] is False and renamed.json()["name"] == "renamed"
    await rest.patch(f"/api/v1/api-keys/{key_id}", json={"confirm_destructive": True}, headers=account.headers)
    rotated = await rest.post(f"/api/v1/api-keys/{key_id}/rotate", json={}, headers=account.headers)
    assert rotated.status_code == 201 and rotated.json()["confirm_destructive"] is True  # kept
    audit = await rest.get(
        "/api/v1/audit-events", params={"action": "key.permissions_changed"}, headers=account.headers
    )
    assert audit.status_code == 200, audit.text
    details = [e["details"] for e in audit.json()["items"]]
    assert [(d["confirm_destructive"], d["previous"]["confirm_destructive"]) for d in details] == [
        (True, False),
        (False, True),
    ]


@pytest.mark.parametrize(
    "body",
    [{"confirm_destructive": "maybe"}, {"confirm_destructive": None, "surprise": 1}, {"confirm_destructive": [True]}],
)
async def test_a_bad_confirm_destructive_is_refused(
    rest: httpx.AsyncClient, account: Account, body: dict[str, Any]
) -> None:
    key_id = (await _mint(rest, account))["id"]
    response = await rest.patch(f"/api/v1/api-keys/{key_id}", json=body, headers=account.headers)
    assert response.status_code == 422, response.text
    assert set(response.json()["error"]) >= {"code", "message"}
    created = await rest.post(
        "/api/v1/api-keys", json={"name": "x", "confirm_destructive": "maybe"}, headers=account.headers
    )
    assert created.status_code == 422 and "error" in created.json()
    assert (await rest.get(f"/api/v1/api-keys/{key_id}", headers=account.headers)).json()[
        "confirm_destructive"
    ] is False


async def test_patching_an_unknown_key_is_404(rest: httpx.AsyncClient, account: Account) -> None:
    response = await rest.patch(
        "/api/v1/api-keys/00000000-0000-0000-0000-000000000000",
        json={"confirm_destructive": True},
        headers=account.headers,
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# -- asking ----------------------------------------------------------------------------------------------------------
async def test_accepting_deletes_and_the_question_says_what(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    person = Person("accept")
    async with connect(mcp_url, key, person) as mcp:
        memory = await ok(mcp, "save_memory", {"content": "the deploy password rotates on Mondays"})
        assert person.asked == []  # creating asks nothing
        assert (await ok(mcp, "delete_memory", {"id": memory["id"]}))["deleted"] is True
    assert len(person.asked) == 1
    assert memory["id"] in person.asked[0] and "deploy password rotates" in person.asked[0]
    assert person.asked[0].startswith("Delete the memory") and "cannot be undone" in person.asked[0]
    gone = await rest.get(f"/api/v1/memories/{memory['id']}", headers=account.headers)
    assert gone.status_code == 404


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_declining_or_cancelling_changes_nothing(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, action: str
) -> None:
    key = await confirming_key(rest, account)
    person = Person(action)
    async with connect(mcp_url, key, person) as mcp:
        await ok(mcp, "save_artifact", {"project": "p", "slug": "notes", "content": "v1", "title": "Notes"})
        assert person.asked == []  # a new artifact overwrites nothing
        text = await tool_error(mcp, "save_artifact", {"project": "p", "slug": "notes", "content": "v2"})
        assert text.startswith(("declined:", "cancelled:")) and "nothing was changed" in text, text
        assert "Replace the artifact p/notes, 'Notes' (version 1" in person.asked[0], person.asked
        text = await tool_error(mcp, "delete_artifact", {"project": "p", "slug": "notes"})
        assert "did nothing" in text
        assert (await ok(mcp, "get_artifact", {"project": "p", "slug": "notes"}))["content"] == "v1"


async def test_unchecking_the_box_is_a_decline(mcp_url: str, account: Account, rest: httpx.AsyncClient) -> None:
    key = await confirming_key(rest, account)
    async with connect(mcp_url, key, Person("accept", {"confirm": False})) as mcp:
        await ok(mcp, "create_prompt", {"name": "keep-me", "content": "hello"})
        assert (await tool_error(mcp, "delete_prompt", {"name": "keep-me"})).startswith("declined:")
        await ok(mcp, "get_prompt", {"name": "keep-me"})


async def test_a_missing_target_asks_nothing_and_the_tool_reports_it(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    person = Person("accept")
    async with connect(mcp_url, key, person) as mcp:
        text = await tool_error(mcp, "delete_prompt", {"name": "never-made"})
        assert "not_found" in text or "not found" in text.lower(), text
    assert person.asked == []


async def test_a_key_without_the_setting_asks_nothing(mcp_url: str, account: Account) -> None:
    person = Person("decline")
    async with connect(mcp_url, account.key, person) as mcp:
        await ok(mcp, "create_prompt", {"name": "free", "content": "x"})
        await ok(mcp, "delete_prompt", {"name": "free"})
    assert person.asked == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_that_cannot_be_asked_does_not_see_the_tools(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, mode: Any
) -> None:
    key = await confirming_key(rest, account)
    async with connect(mcp_url, key, None, mode=mode) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert names == set(TOOL_NAMES) - CONFIRMED_TOOLS
        memory = await ok(mcp, "save_memory", {"content": "stays"})
        text = await tool_error(mcp, "delete_memory", {"id": memory["id"]})
        assert text.startswith("confirmation_unavailable:") and "nothing was changed" in text, text
    async with connect(mcp_url, key, Person("accept")) as mcp:  # the same key, with a client that can ask
        assert {t.name for t in (await mcp.list_tools()).tools} == set(TOOL_NAMES)
        assert (await ok(mcp, "get_memory", {"id": memory["id"]}))["content"] == "stays"


# -- answers that are not answers ------------------------------------------------------------------------------------
async def test_an_answer_that_does_not_match_the_form_is_a_protocol_error(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    async with connect(mcp_url, key, Person("accept", {"confirm": "yes please"})) as mcp:
        memory = await ok(mcp, "save_memory", {"content": "stays"})
        with pytest.raises(BaseException) as caught:
            await mcp.call_tool("delete_memory", {"id": memory["id"]})
        errors = mcp_errors(caught.value)
        assert errors and errors[0].error.code == -32602, caught.value
        assert "confirm" in errors[0].error.message
        assert (await ok(mcp, "get_memory", {"id": memory["id"]}))["content"] == "stays"


def _rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


async def test_a_forged_answer_is_a_protocol_error(mcp_url: str, account: Account, rest: httpx.AsyncClient) -> None:
    """An agent answering "accept" itself, without the question ever being asked (no, or a made-up, state)."""
    key = await confirming_key(rest, account)
    async with connect(mcp_url, key, Person("decline")) as mcp:
        memory = await ok(mcp, "save_memory", {"content": "stays"})
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "forger", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    }
    accepted = {"confirm": {"action": "accept", "content": {"confirm": True}}}
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "delete_memory",
    }
    for extra in ({}, {"requestState": "v1.made-up"}):
        params = {"name": "delete_memory", "arguments": {"id": memory["id"]}, "inputResponses": accepted, "_meta": meta}
        response = await rest.post(MCP_PATH, json=_rpc("tools/call", {**params, **extra}), headers=headers)
        body = response.json()
        assert body.get("error", {}).get("code") == -32602, (response.status_code, body)
    listed = await rest.get(f"/api/v1/memories/{memory['id']}", headers=account.headers)
    assert listed.status_code == 200


async def test_an_answer_after_the_timeout_is_a_protocol_error(quick_server: LiveServer, account: Account) -> None:
    url = quick_server.url + MCP_PATH
    async with connect(url, account.key) as mcp:
        await ok(mcp, "create_prompt", {"name": "slow", "content": "x"})
    async with httpx.AsyncClient(base_url=quick_server.url, timeout=30) as rest:
        key = await confirming_key(rest, account)
    async with connect(url, key, Person("accept", delay=1.5)) as mcp:
        with pytest.raises(BaseException) as caught:
            await mcp.call_tool("delete_prompt", {"name": "slow"})
        errors = mcp_errors(caught.value)
        assert errors and errors[0].error.code == -32602 and "expired" in errors[0].error.message, caught.value
        await ok(mcp, "get_prompt", {"name": "slow"})


async def test_the_result_of_an_accepted_call_is_the_tools_own(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    person = Person("accept")
    async with connect(mcp_url, key, person) as mcp:
        await ok(mcp, "create_prompt", {"name": "greet", "content": "hello"})
        result = await mcp.call_tool("update_prompt", {"name": "greet", "content": "hello {{who}}"})
        assert isinstance(result, CallToolResult) and not result.is_error
        assert isinstance(result.content[0], TextContent)
        assert result.structured_content is not None and result.structured_content["content"] == "hello {{who}}"
    assert person.asked[0].startswith("Replace the prompt 'greet' (version 1, 5 characters)"), person.asked
    assert "changing content" in person.asked[0]
