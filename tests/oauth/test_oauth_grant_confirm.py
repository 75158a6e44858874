"""``confirm_destructive`` on connected apps (SQLite and PostgreSQL), with grants minted by the real flow: the
consent page's "Ask me before deleting or replacing anything" (ticked at first), ``PATCH /api/v1/oauth/grants/{id}``
with the revocation's owner rules and the keys' PATCH error shapes, audited ``oauth.updated``; the grant's
``Principal`` carries it at once in this process (a client that declared no elicitation is not offered the
destructive tools). The SDK client being asked is in ``tests/mcp/test_mcp_grant_confirm.py``; other replicas in
``test_oauth_grants_extras_live.py``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from helpers.api_errors import assert_error
from helpers.factories import Account
from oauth.flow import Connect, Flow
from vibexp.api.mcp.confirm import CONFIRMED_TOOLS
from vibexp.core.access import Role

GRANTS = "/api/v1/oauth/grants"
WRITES = ["prompts:write", "memories:write", "artifacts:write"]


async def tool_names(http: httpx.AsyncClient, token: str) -> set[str]:
    """``tools/list`` on ``/mcp/v1/connect`` from a client that declared no capabilities (so cannot be asked)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    answer = await http.post("/mcp/v1/connect", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return {tool["name"] for tool in answer.json()["result"]["tools"]}


async def _grant(flow: Flow) -> dict[str, Any]:
    answer = await flow.http.get(GRANTS, headers=flow.person.headers, params={"owner": "me"})
    assert answer.status_code == 200, answer.text
    [item] = answer.json()["items"]
    return dict(item)


async def _patch(flow: Flow, grant_id: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return await flow.http.patch(f"{GRANTS}/{grant_id}", json=body, headers=headers or flow.person.headers)


async def test_the_consent_page_offers_the_box_ticked_and_the_answer_is_kept(
    account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    page = await alice.authorize()
    assert page.status_code == 200, page.text
    assert "Ask me before deleting or replacing anything" in page.text
    assert 'name="confirm_destructive" value="true" id="f-confirm" data-testid="consent-confirm" checked' in page.text
    asking = await alice.tokens(scopes=WRITES, confirm_destructive=True)
    first = await _grant(alice)
    assert first["confirm_destructive"] is True
    destructive = await tool_names(alice.http, asking["access_token"])
    assert destructive and not destructive & CONFIRMED_TOOLS  # it cannot ask: no destructive tools

    bob = await oauth_person(Role.member, client_id=alice.client_id)
    plain = await bob.tokens(scopes=WRITES)  # the box unticked: the form sends no field
    assert (await _grant(bob))["confirm_destructive"] is False
    assert await tool_names(bob.http, plain["access_token"]) >= CONFIRMED_TOOLS
    events = await alice.http.get("/api/v1/audit-events", headers=account.headers, params={"action": "oauth.granted"})
    assert [e["details"]["confirm_destructive"] for e in events.json()["items"]] == [False, True]  # newest first


async def test_patch_turns_it_on_and_off_audited_and_applies_at_once(account: Account, oauth_person: Connect) -> None:
    alice = await oauth_person(Role.member)
    tokens = await alice.tokens(scopes=WRITES)
    grant = (await _grant(alice))["id"]
    assert await tool_names(alice.http, tokens["access_token"]) >= CONFIRMED_TOOLS  # cached now

    on = await _patch(alice, grant, {"confirm_destructive": True})
    assert on.status_code == 200, on.text
    assert on.json()["confirm_destructive"] is True and on.json()["id"] == grant
    assert not await tool_names(alice.http, tokens["access_token"]) & CONFIRMED_TOOLS  # this process: at once
    same = await _patch(alice, grant, {"confirm_destructive": True})  # no change: nothing recorded
    assert same.status_code == 200 and same.json()["confirm_destructive"] is True
    untouched = await _patch(alice, grant, {})
    assert untouched.status_code == 200 and untouched.json()["confirm_destructive"] is True
    off = await _patch(alice, grant, {"confirm_destructive": False})
    assert off.json()["confirm_destructive"] is False
    assert await tool_names(alice.http, tokens["access_token"]) >= CONFIRMED_TOOLS
    assert (await _grant(alice))["confirm_destructive"] is False

    events = await alice.http.get("/api/v1/audit-events", headers=account.headers, params={"action": "oauth.updated"})
    assert events.status_code == 200, events.text
    changes = [
        (e["target"]["id"], e["details"]["confirm_destructive"], e["details"]["previous"]["confirm_destructive"])
        for e in events.json()["items"]
    ]
    assert changes == [(grant, False, True), (grant, True, False)]
    assert {e["actor"]["id"] for e in events.json()["items"]} == {alice.person.key_id}


@pytest.mark.parametrize(
    "body",
    [
        {"confirm_destructive": "maybe"},
        {"confirm_destructive": [True]},
        {"confirm_destructive": True, "scopes": ["keys:write"]},
        ["confirm_destructive"],
    ],
)
async def test_a_bad_body_is_422_and_changes_nothing(oauth_person: Connect, body: Any) -> None:
    alice = await oauth_person(Role.member)
    await alice.tokens()
    grant = (await _grant(alice))["id"]
    assert_error(await _patch(alice, grant, body), 422, "validation_error")
    assert (await _grant(alice))["confirm_destructive"] is False


async def test_owner_rules_are_the_revocations(account: Account, oauth_person: Connect) -> None:
    alice = await oauth_person(Role.member)
    await alice.tokens()
    bob = await oauth_person(Role.member, client_id=alice.client_id)
    bob_tokens = await bob.tokens(scopes=WRITES)
    bob_grant = (await _grant(bob))["id"]
    # A member: another person's grant is 404, exactly as an unknown one.
    refused = await _patch(alice, bob_grant, {"confirm_destructive": True})
    unknown = await _patch(alice, "00000000-0000-7000-8000-000000000000", {"confirm_destructive": True})
    assert assert_error(refused, 404, "not_found") == assert_error(unknown, 404, "not_found")
    assert_error(await _patch(alice, "x" * 37, {"confirm_destructive": True}), 422, "validation_error")
    # An admin (and a service key) may change anyone's.
    admin = await oauth_person(Role.admin, client_id=alice.client_id)
    assert (await _patch(admin, bob_grant, {"confirm_destructive": True})).json()["confirm_destructive"] is True
    by_service = await _patch(alice, bob_grant, {"confirm_destructive": False}, headers=account.headers)
    assert by_service.status_code == 200 and by_service.json()["confirm_destructive"] is False
    # A viewer's read-only key, and the access token itself, may not.
    viewer = await oauth_person(Role.viewer, client_id=alice.client_id)
    await viewer.tokens()
    assert_error(await _patch(viewer, (await _grant(viewer))["id"], {"confirm_destructive": True}), 403)
    bearer = {"Authorization": f"Bearer {bob_tokens['access_token']}"}
    assert_error(await _patch(bob, bob_grant, {"confirm_destructive": True}, headers=bearer), 401)
    # A revoked grant cannot be changed.
    assert (await bob.http.delete(f"{GRANTS}/{bob_grant}", headers=bob.person.headers)).status_code == 204
    assert_error(await _patch(bob, bob_grant, {"confirm_destructive": True}), 409, "grant_revoked")
    assert (await _grant(bob))["confirm_destructive"] is False
