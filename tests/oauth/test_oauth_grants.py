"""Connected apps over REST (SQLite and PostgreSQL): ``GET /api/v1/oauth/grants`` and ``DELETE
/api/v1/oauth/grants/{id}``, with grants minted by the real flow (register → consent → token).

A grant is a credential like a personal key: a member or viewer lists and revokes their own only (another's is 404,
exactly as another account's), admins and owners everyone's, narrowed with the keys' ``owner=`` filter; a revocation
is refused at once in this process, audited ``oauth.revoked``, and a second one is 409 ``grant_revoked``."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account
from oauth.flow import Connect, Flow, new_flow, register
from vibexp.core.access import Role

GRANTS = "/api/v1/oauth/grants"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _mcp(flow: Flow, token: str) -> int:
    answer = await flow.http.post(
        "/mcp/v1/connect", json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    )
    return answer.status_code


async def _ids(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    answer = await client.get(GRANTS, headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def _grant_id(flow: Flow) -> str:
    """The id of the (one) grant of ``flow``'s person, through their own key."""
    ids = await _ids(flow.http, flow.person.headers, owner="me")
    assert len(ids) == 1, ids
    return ids[0]


async def test_an_item_names_its_client_owner_scopes_and_usage(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    tokens = await alice.tokens(scopes=["prompts:read", "memories:write"])
    assert await _mcp(alice, tokens["access_token"]) == 200
    answer = await client.get(GRANTS, headers=alice.person.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item["client"] == {
        "client_id": alice.client_id,
        "name": "Test tool",
        "kind": "registered",
        "redirect_host": "127.0.0.1",
    }
    assert item["owner"] == {"user_id": alice.person.user_id, "email": alice.person.email}
    assert item["scopes"] == ["prompts:read", "memories:write"]
    assert item["revoked_at"] is None and item["revoked_reason"] is None
    assert item["created_at"] and item["request_count"] >= 0
    assert tokens["access_token"] not in answer.text and tokens["refresh_token"] not in answer.text


async def test_members_see_their_own_admins_everyones_and_the_owner_filter_narrows(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    await alice.tokens()
    bob = await oauth_person(Role.viewer, client_id=alice.client_id)
    await bob.tokens()
    admin = await oauth_person(Role.admin, client_id=alice.client_id)
    await admin.tokens()
    alice_grant, bob_grant, admin_grant = await _grant_id(alice), await _grant_id(bob), await _grant_id(admin)

    everyone = [admin_grant, bob_grant, alice_grant]  # newest first
    assert await _ids(client, account.headers) == everyone  # a service key acts for the account
    assert await _ids(client, admin.person.headers) == everyone
    assert await _ids(client, admin.person.headers, owner=alice.person.email) == [alice_grant]
    assert await _ids(client, admin.person.headers, owner=bob.person.user_id) == [bob_grant]
    assert await _ids(client, admin.person.headers, owner="me") == [admin_grant]
    assert await _ids(client, admin.person.headers, owner="service") == []  # every grant is a person's
    assert await _ids(client, admin.person.headers, owner="nobody@example.com") == []
    # A member or viewer: their own, whatever the filter names.
    assert await _ids(client, alice.person.headers) == [alice_grant]
    assert await _ids(client, alice.person.headers, owner=bob.person.email) == []
    assert await _ids(client, bob.person.headers) == [bob_grant]
    assert await _ids(client, bob.person.headers, owner="me") == [bob_grant]
    # A service key has no "me".
    assert_error(await client.get(GRANTS, headers=account.headers, params={"owner": "me"}), 422)


async def test_another_accounts_grants_are_neither_listed_nor_revocable(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    elsewhere = await new_flow(client, session_factory, role=Role.owner)
    tokens = await elsewhere.tokens()
    foreign = await _grant_id(elsewhere)
    assert await _ids(client, account.headers) == []
    assert_error(await client.delete(f"{GRANTS}/{foreign}", headers=account.headers), 404, "not_found")
    assert await _mcp(elsewhere, tokens["access_token"]) == 200


async def test_a_member_cannot_revoke_anothers_grant_and_is_not_told_it_exists(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    bob = await oauth_person(Role.member, client_id=alice.client_id)
    bob_tokens = await bob.tokens()
    bob_grant = await _grant_id(bob)
    refused = await client.delete(f"{GRANTS}/{bob_grant}", headers=alice.person.headers)
    unknown = await client.delete(f"{GRANTS}/00000000-0000-7000-8000-000000000000", headers=alice.person.headers)
    assert assert_error(refused, 404, "not_found") == assert_error(unknown, 404, "not_found")
    assert await _mcp(bob, bob_tokens["access_token"]) == 200  # untouched
    assert await _ids(client, bob.person.headers, status="active") == [bob_grant]


async def test_revoke_refuses_the_token_audits_and_a_second_revoke_is_409(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    tokens = await alice.tokens()
    grant = await _grant_id(alice)
    assert await _mcp(alice, tokens["access_token"]) == 200
    revoked = await client.delete(f"{GRANTS}/{grant}", headers=alice.person.headers)
    assert revoked.status_code == 204 and revoked.content == b""
    assert await _mcp(alice, tokens["access_token"]) == 401  # this process: at once (GRANT_CHANGED at commit)
    refreshed = await alice.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    again = await client.delete(f"{GRANTS}/{grant}", headers=alice.person.headers)
    assert_error(again, 409, "grant_revoked")

    [item] = (await client.get(GRANTS, headers=alice.person.headers)).json()["items"]
    assert item["revoked_at"] is not None and item["revoked_reason"] == "revoked"
    assert await _ids(client, alice.person.headers, status="active") == []
    assert await _ids(client, alice.person.headers, status="revoked") == [grant]
    events = await client.get("/api/v1/audit-events", headers=account.headers, params={"action": "oauth.revoked"})
    assert events.status_code == 200, events.text
    [event] = events.json()["items"]
    assert event["target"]["id"] == grant and event["target"]["name"] == "Test tool"
    assert event["details"] == {"reason": "revoked", "client_id": alice.client_id}
    assert event["actor"]["id"] == alice.person.key_id  # her own key did it


async def test_a_viewers_read_only_key_lists_but_does_not_revoke(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    """A viewer's keys are read-only (``key_ceiling``): their key lists their grants; revoking is the dashboard's
    (signed in, where a viewer holds ``keys:write`` for their own credentials)."""
    viewer = await oauth_person(Role.viewer)
    tokens = await viewer.tokens()
    grant = await _grant_id(viewer)
    refused = await client.delete(f"{GRANTS}/{grant}", headers=viewer.person.headers)
    assert_error(refused, 403, "insufficient_scope")
    assert await _mcp(viewer, tokens["access_token"]) == 200


@pytest.mark.parametrize(
    ("grant_id", "status", "code"),
    [
        ("not-a-uuid", 404, "not_found"),
        ("00000000-0000-0000-0000-000000000000", 404, "not_found"),
        ("x" * 37, 422, "validation_error"),
    ],
)
async def test_a_bad_id_is_a_clear_error_and_changes_nothing(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect, grant_id: str, status: int, code: str
) -> None:
    alice = await oauth_person(Role.member)
    tokens = await alice.tokens()
    error = assert_error(await client.delete(f"{GRANTS}/{grant_id}", headers=account.headers), status, code)
    assert grant_id not in error["message"] or status == 422
    assert await _mcp(alice, tokens["access_token"]) == 200


async def test_pages_follow_the_cursor_newest_first(
    client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    for _ in range(3):  # the same person lets the same client in three times: three grants
        await alice.tokens()
    everyone = await _ids(client, account.headers)
    assert len(everyone) == 3 and everyone == sorted(everyone, reverse=True)
    first = (await client.get(GRANTS, headers=account.headers, params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == everyone[:2] and first["next_cursor"]
    second = (
        await client.get(GRANTS, headers=account.headers, params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [item["id"] for item in second["items"]] == everyone[2:] and second["next_cursor"] is None
    assert_error(await client.get(GRANTS, headers=account.headers, params={"cursor": "!!"}), 422, "invalid_input")
    assert_error(await client.get(GRANTS, headers=account.headers, params={"limit": 0}), 422, "validation_error")
    assert_error(await client.get(GRANTS, headers=account.headers, params={"status": "gone"}), 422, "validation_error")


async def test_a_key_without_keys_scopes_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    minted = await client.post(
        "/api/v1/api-keys", json={"name": "reader", "scopes": ["prompts:read"]}, headers=account.headers
    )
    headers = {"Authorization": f"Bearer {minted.json()['key']}"}
    assert_error(await client.get(GRANTS, headers=headers), 403, "insufficient_scope")
    read_only = await client.post(
        "/api/v1/api-keys", json={"name": "keys reader", "scopes": ["keys:read"]}, headers=account.headers
    )
    headers = {"Authorization": f"Bearer {read_only.json()['key']}"}
    assert (await client.get(GRANTS, headers=headers)).status_code == 200
    assert_error(
        await client.delete(f"{GRANTS}/00000000-0000-7000-8000-000000000000", headers=headers),
        403,
        "insufficient_scope",
    )


async def test_an_access_token_is_no_credential_for_the_grants_api(
    client: httpx.AsyncClient, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.owner)
    tokens = await alice.tokens(scopes=["keys:write"])
    grant = await _grant_id(alice)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert_error(await client.get(GRANTS, headers=bearer), 401)
    assert_error(await client.delete(f"{GRANTS}/{grant}", headers=bearer), 401)
    assert await _ids(client, alice.person.headers, status="active") == [grant]


async def test_a_registered_client_without_grants_lists_nothing(client: httpx.AsyncClient, account: Account) -> None:
    await register(client)
    assert (await client.get(GRANTS, headers=account.headers)).json() == {"items": [], "next_cursor": None}
