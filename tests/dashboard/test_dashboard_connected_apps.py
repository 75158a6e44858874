"""Settings → Connected apps (SQLite and PostgreSQL), with grants made by the real OAuth flow (register → consent →
token): a member sees and revokes their own, an admin everyone's ("Whose"), a viewer revokes their own signed in;
revoking is a POST with the CSRF token, refuses the token at once and is audited; another person's grant is the 404
page; the empty state says how to connect; tabs and pages."""

from __future__ import annotations

import re

import pytest

from dashboard.pages import csrf_of
from helpers.factories import Account
from oauth.flow import Connect, Flow
from vibexp.api.dashboard.routes import connected_apps
from vibexp.core.access import Role

PAGE = "/settings/connected-apps"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
_ROW = re.compile(r'<tr data-grant-id="([^"]+)">')


async def _mcp(flow: Flow, token: str) -> int:
    answer = await flow.http.post(
        "/mcp/v1/connect", json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    )
    return answer.status_code


async def _rows(flow: Flow, **params: str) -> list[str]:
    page = await flow.http.get(PAGE, params=params)
    assert page.status_code == 200, page.text
    return _ROW.findall(page.text)


async def _revoke(flow: Flow, grant_id: str, *, csrf: bool = True) -> tuple[int, str]:
    page = await flow.http.get(PAGE)
    data = {"csrf_token": csrf_of(page.text)} if csrf else {}
    answer = await flow.http.post(f"{PAGE}/{grant_id}/revoke", data=data)
    return answer.status_code, answer.headers.get("location", answer.text)


async def test_a_member_sees_their_own_and_revokes_one(oauth_person: Connect) -> None:
    alice = await oauth_person(Role.member)
    tokens = await alice.tokens(scopes=["prompts:read"])
    bob = await oauth_person(Role.member, client_id=alice.client_id)
    await bob.tokens()
    page = await alice.http.get(PAGE)
    assert page.status_code == 200
    [grant] = _ROW.findall(page.text)
    assert "Test tool" in page.text and 'data-testid="unverified"' in page.text
    assert "<code>127.0.0.1</code>" in page.text and "prompts:read" in page.text
    assert bob.person.email not in page.text and 'data-testid="grant-owner"' not in page.text  # no owner column
    assert 'href="/settings/connected-apps" aria-current="page">Connected apps</a>' in page.text  # in Settings nav
    assert 'data-confirm="Revoke Test tool? It stops working at once' in page.text
    assert tokens["access_token"] not in page.text

    forged, _ = await _revoke(alice, grant, csrf=False)
    assert forged == 403
    assert await _mcp(alice, tokens["access_token"]) == 200  # the forged POST changed nothing
    assert await _revoke(alice, grant) == (303, f"{PAGE}?revoked=1")
    assert await _mcp(alice, tokens["access_token"]) == 401
    shown = await alice.http.get(PAGE, params={"revoked": "1"})
    assert "Connected app revoked" in shown.text and _ROW.findall(shown.text) == []  # the Active tab
    assert await _rows(alice, status="revoked") == [grant]
    assert await _revoke(alice, grant) == (303, f"{PAGE}?status=revoked")  # a second press: no error, nothing new


async def test_a_member_gets_the_404_page_for_anothers_grant(oauth_person: Connect) -> None:
    alice = await oauth_person(Role.member)
    bob = await oauth_person(Role.member, client_id=alice.client_id)
    his = await bob.tokens()
    [grant] = await _rows(bob)
    status, body = await _revoke(alice, grant)
    assert status == 404 and "Test tool" not in body and bob.person.email not in body
    status, _ = await _revoke(alice, "not-a-grant-id")
    assert status == 404
    assert await _mcp(bob, his["access_token"]) == 200


async def test_an_admin_sees_everyones_narrows_to_their_own_and_revokes_a_members(
    oauth_person: Connect, account: Account
) -> None:
    admin = await oauth_person(Role.admin)
    await admin.tokens()
    member = await oauth_person(Role.member, client_id=admin.client_id)
    tokens = await member.tokens()
    everyone = await _rows(admin)
    [mine] = await _rows(admin, owner="me")
    [theirs] = await _rows(member)
    assert everyone == [theirs, mine]
    page = (await admin.http.get(PAGE)).text
    assert member.person.email in page and 'data-testid="owner-filter"' in page
    assert f"Revoke Test tool for {member.person.email}?" in page
    assert await _revoke(admin, theirs) == (303, f"{PAGE}?revoked=1")
    assert await _mcp(member, tokens["access_token"]) == 401
    events = await admin.http.get("/api/v1/audit-events", params={"action": "oauth.revoked"}, headers=account.headers)
    [event] = events.json()["items"]
    assert event["target"]["id"] == theirs and event["details"]["reason"] == "revoked"
    assert event["actor"]["name"] == admin.person.email


async def test_a_viewer_revokes_their_own_signed_in(oauth_person: Connect) -> None:
    viewer = await oauth_person(Role.viewer)
    tokens = await viewer.tokens()
    [grant] = await _rows(viewer)
    assert await _revoke(viewer, grant) == (303, f"{PAGE}?revoked=1")
    assert await _mcp(viewer, tokens["access_token"]) == 401


async def test_the_empty_page_says_how_to_connect(oauth_person: Connect) -> None:
    alice = await oauth_person(Role.member)
    page = await alice.http.get(PAGE)
    assert page.status_code == 200 and _ROW.findall(page.text) == []
    assert 'data-testid="empty"' in page.text and "<code>http://127.0.0.1/mcp/v1/connect</code>" in page.text
    assert "Connect with OAuth" in page.text
    revoked = await alice.http.get(PAGE, params={"status": "revoked"})
    assert 'data-testid="no-match"' in revoked.text


@pytest.mark.parametrize("query", [{"status": "gone"}, {"owner": "service"}, {"cursor": "!!"}])
async def test_a_bad_filter_is_the_422_page(oauth_person: Connect, query: dict[str, str]) -> None:
    alice = await oauth_person(Role.admin)
    page = await alice.http.get(PAGE, params=query)
    assert page.status_code == 422 and "<h1>" in page.text


async def test_older_apps_are_a_page_away(oauth_person: Connect, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connected_apps, "PAGE_SIZE", 2)
    alice = await oauth_person(Role.member)
    for _ in range(3):
        await alice.tokens()
    page = (await alice.http.get(PAGE)).text
    first = _ROW.findall(page)
    cursor = re.search(r'href="/settings/connected-apps\?status=active&amp;owner=all&amp;cursor=([^"]+)"', page)
    assert len(first) == 2 and cursor
    older = await _rows(alice, status="active", owner="all", cursor=cursor.group(1))
    assert len(older) == 1 and older[0] not in first and older[0] < min(first)


# -- "Before deleting": confirm_destructive, toggled in place ---------------------------------------------------------
async def _toggle(flow: Flow, grant_id: str, value: str, *, csrf: bool = True) -> tuple[int, str]:
    page = await flow.http.get(PAGE)
    data = {"confirm_destructive": value} | ({"csrf_token": csrf_of(page.text)} if csrf else {})
    answer = await flow.http.post(f"{PAGE}/{grant_id}/confirm", data=data)
    return answer.status_code, answer.headers.get("location", answer.text)


async def _confirming(flow: Flow) -> bool:
    answer = await flow.http.get("/api/v1/oauth/grants", headers=flow.person.headers, params={"owner": "me"})
    [item] = answer.json()["items"]
    return bool(item["confirm_destructive"])


async def test_a_member_turns_asking_on_and_off_for_their_own(oauth_person: Connect, account: Account) -> None:
    alice = await oauth_person(Role.member)
    await alice.tokens(scopes=["memories:write"])
    [grant] = await _rows(alice)
    page = (await alice.http.get(PAGE)).text
    assert 'data-testid="confirm-off"' in page and ">Ask first<" in page

    assert (await _toggle(alice, grant, "true", csrf=False))[0] == 403
    assert await _confirming(alice) is False  # the forged POST changed nothing
    assert await _toggle(alice, grant, "true") == (303, f"{PAGE}?confirm=on")
    assert await _confirming(alice) is True
    shown = (await alice.http.get(PAGE, params={"confirm": "on"})).text
    assert "now asks you before it deletes" in shown and 'data-testid="confirm-on"' in shown
    assert ">Stop asking<" in shown
    assert await _toggle(alice, grant, "false") == (303, f"{PAGE}?confirm=off")
    assert await _confirming(alice) is False
    for bad in ("yes", ""):
        status, body = await _toggle(alice, grant, bad)
        assert status == 422 and "<h1>" in body
    assert await _confirming(alice) is False

    events = await alice.http.get("/api/v1/audit-events", params={"action": "oauth.updated"}, headers=account.headers)
    assert [e["details"]["confirm_destructive"] for e in events.json()["items"]] == [False, True]
    assert {e["actor"]["name"] for e in events.json()["items"]} == {alice.person.email}


async def test_asking_is_anothers_404_and_a_revoked_apps_is_not_offered(oauth_person: Connect) -> None:
    alice = await oauth_person(Role.member)
    bob = await oauth_person(Role.member, client_id=alice.client_id)
    await bob.tokens()
    [grant] = await _rows(bob)
    status, body = await _toggle(alice, grant, "true")
    assert status == 404 and bob.person.email not in body
    assert await _confirming(bob) is False
    assert await _revoke(bob, grant) == (303, f"{PAGE}?revoked=1")
    revoked = (await bob.http.get(PAGE, params={"status": "revoked"})).text
    assert 'data-testid="confirm-off"' in revoked and 'data-testid="confirm-toggle"' not in revoked
    assert await _toggle(bob, grant, "true") == (303, f"{PAGE}?status=revoked")  # an old page's button
    assert await _confirming(bob) is False
