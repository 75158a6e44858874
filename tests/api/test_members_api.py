"""Teams over REST: members and roles, personal and service keys, the role ceiling, invitations, removal, and every
bad input of issue 28 (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account
from helpers.teams import PASSWORD, Person, bearer, make_person, make_personal_key
from vibexp.core.access import Role
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.members.models import Invitation

MEMBERS = "/api/v1/members"
INVITATIONS = "/api/v1/members/invitations"
ACCEPT = "/api/v1/members/invitations/accept"
KEYS = "/api/v1/api-keys"


async def _team(factory: async_sessionmaker[AsyncSession], account: Account) -> dict[Role, Person]:
    return {role: await make_person(factory, tenant_id=account.tenant.id, role=role) for role in Role}


async def test_members_list_roles_and_key_counts(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    listed = await client.get(MEMBERS, headers=team[Role.admin].headers)
    assert listed.status_code == 200, listed.text
    rows = {row["email"]: row for row in listed.json()["items"]}
    assert {row["role"] for row in rows.values()} == {"owner", "admin", "member", "viewer"}
    assert all(row["key_count"] == 1 for row in rows.values())
    assert set(rows[team[Role.viewer].email]) == {"user_id", "email", "role", "joined_at", "last_seen_at", "key_count"}
    # The key JSON names the owner; the service key names none.
    mine = await client.get(f"{KEYS}/{team[Role.member].key_id}", headers=team[Role.member].headers)
    assert mine.json()["owner"] == {"user_id": team[Role.member].user_id, "email": team[Role.member].email}
    service = await client.get(f"{KEYS}/{account.key_id}", headers=account.headers)
    assert service.json()["owner"] is None


async def test_a_members_and_a_viewers_key_cannot_act_on_members(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    for role in (Role.member, Role.viewer):
        headers = team[role].headers
        assert_error(await client.get(MEMBERS, headers=headers), 403, "insufficient_scope")
        assert_error(await client.get(INVITATIONS, headers=headers), 403, "insufficient_scope")
        refused = await client.post(INVITATIONS, json={"email": "x@example.com", "role": "viewer"}, headers=headers)
        assert_error(refused, 403, "insufficient_scope")
        assert refused.headers["www-authenticate"].endswith('scope="members:write"')
        patched = await client.patch(f"{MEMBERS}/{team[role].user_id}", json={"role": "owner"}, headers=headers)
        assert_error(patched, 403, "insufficient_scope")


async def test_the_role_ceiling_bounds_a_personal_key(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    viewer, member = team[Role.viewer].headers, team[Role.member].headers
    # The key itself holds "*", its owner's role narrows it.
    assert (await client.get("/api/v1/memories", headers=viewer)).status_code == 200
    assert_error(
        await client.post("/api/v1/memories", json={"content": "x"}, headers=viewer), 403, "insufficient_scope"
    )
    assert (await client.post("/api/v1/memories", json={"content": "x"}, headers=member)).status_code == 201
    assert_error(await client.get("/api/v1/audit-events", headers=member), 403, "insufficient_scope")
    # A viewer's key is read-only (it cannot even mint); a member cannot mint a key wider than their role.
    before = len((await client.get(KEYS, headers=account.headers)).json()["items"])
    wide = await client.post(KEYS, json={"name": "w", "scopes": ["memories:read"]}, headers=viewer)
    assert assert_error(wide, 403, "insufficient_scope")
    assert wide.headers["www-authenticate"].endswith('scope="keys:write"')
    audit = await client.post(KEYS, json={"name": "a", "scopes": ["audit:read"]}, headers=member)
    assert "audit:read" in assert_error(audit, 403, "insufficient_scope")["message"]
    assert_error(await client.post(KEYS, json={"name": "a", "scopes": ["*"]}, headers=member), 403)
    assert len((await client.get(KEYS, headers=account.headers)).json()["items"]) == before
    # Within the role: the new key is the person's own; omitted scopes are the minting key's.
    made = await client.post(KEYS, json={"name": "read", "scopes": ["memories:read"]}, headers=member)
    assert made.status_code == 201, made.text
    assert made.json()["owner"]["user_id"] == team[Role.member].user_id
    default = await client.post(KEYS, json={"name": "same"}, headers=member)
    assert default.status_code == 201, default.text
    assert "audit:read" not in default.json()["scopes"] and "*" not in default.json()["scopes"]


async def test_only_admins_and_owners_make_service_keys(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    refused = await client.post(KEYS, json={"name": "ci", "service": True}, headers=team[Role.member].headers)
    assert "service keys" in assert_error(refused, 403, "insufficient_scope")["message"]
    for role in (Role.admin, Role.owner):
        made = await client.post(KEYS, json={"name": "ci", "service": True}, headers=team[role].headers)
        assert made.status_code == 201 and made.json()["owner"] is None
    by_service = await client.post(KEYS, json={"name": "ci2"}, headers=account.headers)
    assert by_service.json()["owner"] is None  # a service key's new key is a service key


async def test_members_see_and_manage_only_their_own_keys(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    member, other = team[Role.member], team[Role.admin]
    listed = await client.get(KEYS, headers=member.headers)
    assert [key["id"] for key in listed.json()["items"]] == [member.key_id]
    assert (await client.get(KEYS, params={"owner": other.email}, headers=member.headers)).json()["items"] == []
    for request in (
        client.get(f"{KEYS}/{other.key_id}", headers=member.headers),
        client.get(f"{KEYS}/{account.key_id}", headers=member.headers),
        client.delete(f"{KEYS}/{other.key_id}", headers=member.headers),
        client.post(f"{KEYS}/{other.key_id}/rotate", headers=member.headers),
        client.get(f"{KEYS}/{other.key_id}/usage", headers=member.headers),
    ):
        assert_error(await request, 404, "not_found")
    assert (await client.get(KEYS, headers=other.headers)).status_code == 200  # the admin's key still works
    # Admins see everyone's; the owner filter narrows.
    everyone = {key["id"] for key in (await client.get(KEYS, headers=other.headers)).json()["items"]}
    assert {member.key_id, other.key_id, account.key_id} <= everyone
    service = (await client.get(KEYS, params={"owner": "service"}, headers=other.headers)).json()["items"]
    assert account.key_id in {key["id"] for key in service} and all(key["owner"] is None for key in service)
    theirs = (await client.get(KEYS, params={"owner": member.email}, headers=other.headers)).json()["items"]
    assert [key["id"] for key in theirs] == [member.key_id]
    mine = (await client.get(KEYS, params={"owner": "me"}, headers=other.headers)).json()["items"]
    assert [key["id"] for key in mine] == [other.key_id]
    assert_error(await client.get(KEYS, params={"owner": "me"}, headers=account.headers), 422, "invalid_input")


async def test_a_demotion_narrows_the_persons_keys_at_once(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    admin = team[Role.admin]
    assert (await client.get(MEMBERS, headers=admin.headers)).status_code == 200
    changed = await client.patch(
        f"{MEMBERS}/{admin.user_id}", json={"role": "viewer"}, headers=team[Role.owner].headers
    )
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    assert_error(await client.get(MEMBERS, headers=admin.headers), 403, "insufficient_scope")
    assert_error(await client.post("/api/v1/memories", json={"content": "x"}, headers=admin.headers), 403)
    events = (
        await client.get("/api/v1/audit-events", params={"action": "member.role_changed"}, headers=account.headers)
    ).json()
    event = events["items"][0]
    assert event["details"] == {"role": "viewer", "previous": "admin"}
    assert event["actor"]["type"] == "api_key" and team[Role.owner].email in event["actor"]["name"]


async def test_role_changes_that_are_refused(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    owner, admin = team[Role.owner], team[Role.admin]
    # Unknown role, own role, above one's own, an owner touched by an admin.
    assert_error(
        await client.patch(f"{MEMBERS}/{team[Role.member].user_id}", json={"role": "god"}, headers=owner.headers), 422
    )
    own = await client.patch(f"{MEMBERS}/{admin.user_id}", json={"role": "owner"}, headers=admin.headers)
    assert "own role" in assert_error(own, 403, "insufficient_scope")["message"]
    up = await client.patch(f"{MEMBERS}/{team[Role.member].user_id}", json={"role": "owner"}, headers=admin.headers)
    assert_error(up, 403, "insufficient_scope")
    assert_error(await client.patch(f"{MEMBERS}/{owner.user_id}", json={"role": "viewer"}, headers=admin.headers), 403)
    assert_error(await client.delete(f"{MEMBERS}/{owner.user_id}", headers=admin.headers), 403)
    # The last owner: neither demoted nor removed (nor leaving), by anyone.
    assert_error(await client.delete(f"{MEMBERS}/{owner.user_id}", headers=owner.headers), 409, "last_owner")
    # A service key stands as an admin: it neither touches an owner nor makes one (the CLI, as an owner, can; the
    # last owner's demotion through it is refused in tests/integration/test_teams_cli.py).
    service = await client.patch(f"{MEMBERS}/{owner.user_id}", json={"role": "admin"}, headers=account.headers)
    assert "service key" in assert_error(service, 403, "insufficient_scope")["message"]
    crowned = await client.patch(f"{MEMBERS}/{admin.user_id}", json={"role": "owner"}, headers=account.headers)
    assert_error(crowned, 403, "insufficient_scope")
    invited = await client.post(INVITATIONS, json={"email": "o2@example.com", "role": "owner"}, headers=account.headers)
    assert_error(invited, 403, "insufficient_scope")
    # Unknown and another account's members are 404.
    assert_error(await client.patch(f"{MEMBERS}/nope", json={"role": "admin"}, headers=owner.headers), 404)
    listed = await client.get(MEMBERS, headers=owner.headers)
    assert {row["email"]: row["role"] for row in listed.json()["items"]}[owner.email] == "owner"


async def test_removing_a_member_revokes_their_keys_not_the_service_keys(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    member = team[Role.member]
    second, _ = await make_personal_key(session_factory, tenant_id=account.tenant.id, email=member.email, name="ci")
    assert (await client.get("/api/v1/memories", headers=bearer(second))).status_code == 200
    removed = await client.delete(f"{MEMBERS}/{member.user_id}", headers=team[Role.admin].headers)
    assert removed.status_code == 204, removed.text
    for key in (member.key, second):
        assert_error(await client.get("/api/v1/memories", headers=bearer(key)), 401, "invalid_api_key")
    assert (await client.get("/api/v1/memories", headers=account.headers)).status_code == 200
    assert member.email not in {
        row["email"] for row in (await client.get(MEMBERS, headers=account.headers)).json()["items"]
    }
    trail = (await client.get("/api/v1/audit-events", params={"action": "key.revoked"}, headers=account.headers)).json()
    revoked = [event for event in trail["items"] if event["details"] == {"reason": "member_removed"}]
    assert len(revoked) == 2
    assert_error(await client.delete(f"{MEMBERS}/{member.user_id}", headers=account.headers), 404, "not_found")


async def test_a_removal_racing_key_mints_leaves_no_key_alive(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    member = await make_person(session_factory, tenant_id=account.tenant.id, role=Role.member)

    async def mint() -> httpx.Response:
        return await client.post(KEYS, json={"name": "racing"}, headers=member.headers)

    results = await asyncio.gather(
        *(mint() for _ in range(4)),
        client.delete(f"{MEMBERS}/{member.user_id}", headers=account.headers),
        *(mint() for _ in range(4)),
    )
    assert results[4].status_code == 204
    minted = [r.json()["key"] for r in results if r.status_code == 201]
    for key in (member.key, *minted):
        assert_error(await client.get("/api/v1/memories", headers=bearer(key)), 401, "invalid_api_key")
    theirs = (await client.get(KEYS, params={"owner": member.user_id}, headers=account.headers)).json()["items"]
    assert theirs and all(key["status"] == "revoked" for key in theirs)


async def test_an_invitation_creates_the_user_once(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await make_person(session_factory, tenant_id=account.tenant.id, role=Role.admin)
    made = await client.post(
        INVITATIONS, json={"email": "New.Person@Example.com", "role": "member"}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    invitation = made.json()
    token = invitation["token"]
    assert invitation["email"] == "new.person@example.com" and invitation["link"].endswith(f"#{token}")
    pending = (await client.get(INVITATIONS, headers=admin.headers)).json()["items"]
    assert [p["id"] for p in pending] == [invitation["id"]] and "token" not in pending[0]
    # A short password is refused and the link stays usable.
    assert_error(await client.post(ACCEPT, json={"token": token, "password": "short"}), 422, "invalid_input")
    accepted = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == "member" and accepted.json()["created"] is True
    again = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert "used already" in assert_error(again, 422, "invalid_invitation")["message"]
    rows = {row["email"]: row["role"] for row in (await client.get(MEMBERS, headers=admin.headers)).json()["items"]}
    assert rows["new.person@example.com"] == "member"
    assert (await client.get(INVITATIONS, headers=admin.headers)).json()["items"] == []
    # Inviting a member again is refused.
    dup = await client.post(
        INVITATIONS, json={"email": "new.person@example.com", "role": "viewer"}, headers=admin.headers
    )
    assert_error(dup, 409, "already_exists")
    actions = {e["action"] for e in (await client.get("/api/v1/audit-events", headers=account.headers)).json()["items"]}
    assert {"member.invited", "user.created", "member.joined"} <= actions


async def test_an_existing_user_joins_a_second_account_with_their_password(
    client: httpx.AsyncClient,
    account: Account,
    other_account: Account,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    elsewhere = await make_person(session_factory, tenant_id=other_account.tenant.id, role=Role.owner)
    made = await client.post(INVITATIONS, json={"email": elsewhere.email, "role": "viewer"}, headers=account.headers)
    token = made.json()["token"]
    wrong = await client.post(ACCEPT, json={"token": token, "password": "not the password"})
    assert_error(wrong, 401, "authentication_failed")
    accepted = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200 and accepted.json()["created"] is False
    assert accepted.json()["tenant_id"] == account.tenant.id
    # Member of both now, with a role in each; their old key still acts in its own account only.
    assert (await client.get(MEMBERS, headers=elsewhere.headers)).status_code == 200
    roles = {row["email"]: row["role"] for row in (await client.get(MEMBERS, headers=account.headers)).json()["items"]}
    assert roles[elsewhere.email] == "viewer"


async def test_bad_invitations(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    team = await _team(session_factory, account)
    admin = team[Role.admin].headers
    # Above the inviter's role; an unknown role; not an e-mail.
    assert_error(await client.post(INVITATIONS, json={"email": "a@example.com", "role": "owner"}, headers=admin), 403)
    assert_error(await client.post(INVITATIONS, json={"email": "a@example.com", "role": "boss"}, headers=admin), 422)
    assert_error(await client.post(INVITATIONS, json={"email": "nobody", "role": "viewer"}, headers=admin), 422)
    # Forged, expired and revoked links.
    forged = await client.post(ACCEPT, json={"token": "vibinv_" + "0" * 64, "password": PASSWORD})
    assert "not valid" in assert_error(forged, 422, "invalid_invitation")["message"]
    assert_error(await client.post(ACCEPT, json={"token": "hello", "password": PASSWORD}), 422, "invalid_invitation")
    assert_error(await client.post(ACCEPT, json={"password": PASSWORD}), 422)
    expired = (
        await client.post(INVITATIONS, json={"email": "late@example.com", "role": "viewer"}, headers=admin)
    ).json()
    async with session_scope(session_factory, write=True) as session:
        await session.execute(update(Invitation).where(Invitation.id == expired["id"]).values(expires_at=utcnow()))
    late = await client.post(ACCEPT, json={"token": expired["token"], "password": PASSWORD})
    assert "expired" in assert_error(late, 422, "invalid_invitation")["message"]
    revoked = (
        await client.post(INVITATIONS, json={"email": "gone@example.com", "role": "viewer"}, headers=admin)
    ).json()
    assert (await client.delete(f"{INVITATIONS}/{revoked['id']}", headers=admin)).status_code == 204
    gone = await client.post(ACCEPT, json={"token": revoked["token"], "password": PASSWORD})
    assert "revoked" in assert_error(gone, 422, "invalid_invitation")["message"]
    assert_error(await client.delete(f"{INVITATIONS}/nope", headers=admin), 404, "not_found")
    trail = (
        await client.get("/api/v1/audit-events", params={"action": "invitation.revoked"}, headers=account.headers)
    ).json()
    assert [e["target"]["name"] for e in trail["items"]] == ["gone@example.com"]
