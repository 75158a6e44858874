"""Settings → Members and ``/join`` in the dashboard: the list, an invitation link shown once, role changes,
removal, revoking an invitation, a member's 403, and joining through the link (a new user, an existing one)."""

from __future__ import annotations

import re
import secrets

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import PASSWORD, Person, csrf_of, csrf_token, sign_in
from vibexp.core.access import Role
from vibexp.core.db import session_scope
from vibexp.core.users.service import create_user

PAGE = "/settings/members"
_LINK = re.compile(r'id="new-link"[^>]*value="([^"]+)"')


async def _colleague(factory: async_sessionmaker[AsyncSession], person: Person, role: Role) -> Person:
    email = f"{secrets.token_hex(4)}@example.com"
    async with session_scope(factory) as session:
        await create_user(session, tenant_id=person.account.tenant.id, email=email, password=PASSWORD, role=role)
    return Person(email=email, password=PASSWORD, account=person.account)


async def _user_id(client: httpx.AsyncClient, email: str) -> str:
    page = (await client.get(PAGE)).text
    match = re.search(r'<tr data-user-id="([^"]+)">\s*<td data-label="E-mail"><span>' + re.escape(email), page)
    assert match, f"{email} is not listed"
    return match.group(1)


async def _roles(client: httpx.AsyncClient, person: Person) -> dict[str, str]:
    """The members' roles as the REST API answers them (through the account's service key)."""
    api = await client.get("/api/v1/members", headers=person.account.headers)
    assert api.status_code == 200, api.text
    return {m["email"]: m["role"] for m in api.json()["items"]}


async def test_owner_lists_changes_role_and_removes(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    colleague = await _colleague(session_factory, person, Role.member)
    await sign_in(client, person)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert person.email in page.text and colleague.email in page.text
    assert 'href="/settings/members" aria-current="page"' in page.text  # in the Settings navigation
    token = csrf_of(page.text)
    uid = await _user_id(client, colleague.email)

    changed = await client.post(f"{PAGE}/{uid}/role", data={"csrf_token": token, "role": "viewer"})
    assert changed.status_code == 303
    assert (await _roles(client, person))[colleague.email] == "viewer"

    bad = await client.post(f"{PAGE}/{uid}/role", data={"csrf_token": token, "role": "emperor"})
    assert bad.status_code == 422 and "Choose a role." in bad.text

    removed = await client.post(f"{PAGE}/{uid}/remove", data={"csrf_token": token}, headers={"accept": "text/html"})
    assert removed.status_code == 303
    assert colleague.email not in (await client.get(PAGE)).text

    no_csrf = await client.post(f"{PAGE}/{uid}/remove", data={})
    assert no_csrf.status_code == 403


async def test_own_role_and_last_owner_are_refused(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    token = csrf_of((await client.get(PAGE)).text)
    me = await _user_id(client, person.email)
    own = await client.post(f"{PAGE}/{me}/role", data={"csrf_token": token, "role": "viewer"})
    assert own.status_code == 403 and "Nobody can change their own role" in own.text
    leave = await client.post(f"{PAGE}/{me}/remove", data={"csrf_token": token})
    assert leave.status_code == 409 and "last owner" in leave.text


async def test_member_sees_no_members_page(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    member = await _colleague(session_factory, person, Role.member)
    await sign_in(client, member)
    page = await client.get(PAGE)
    assert page.status_code == 403 and "members:read" in page.text
    # Their other pages open (the alerts badge, which needs audit:read, is left out for them).
    account = await client.get("/settings/account")
    assert account.status_code == 200 and 'data-testid="open-alerts"' not in account.text
    token = csrf_of(account.text)
    invite = await client.post(f"{PAGE}/invite", data={"csrf_token": token, "email": "x@example.com", "role": "viewer"})
    assert invite.status_code == 403


async def test_admin_cannot_invite_an_owner(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await _colleague(session_factory, person, Role.admin)
    await sign_in(client, admin)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert '<option value="owner"' not in page.text  # the form offers no role above the admin's own
    owner_row = await _user_id(client, person.email)
    assert f'action="/settings/members/{owner_row}/remove"' not in page.text
    refused = await client.post(
        f"{PAGE}/invite", data={"csrf_token": csrf_of(page.text), "email": "boss@example.com", "role": "owner"}
    )
    assert refused.status_code == 403


async def test_invite_shows_link_once_then_join_creates_user(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    token = csrf_of((await client.get(PAGE)).text)
    email = f"new-{secrets.token_hex(3)}@example.com"

    missing = await client.post(f"{PAGE}/invite", data={"csrf_token": token, "email": "", "role": "member"})
    assert missing.status_code == 422 and "Enter the e-mail" in missing.text

    made = await client.post(f"{PAGE}/invite", data={"csrf_token": token, "email": email, "role": "member"})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    link = _LINK.search(made.text)
    assert link and "/join#vibinv_" in link.group(1)
    listed = await client.get(PAGE)
    assert email in listed.text and "vibinv_" not in listed.text  # pending, and the link is not shown again
    twice = await client.post(f"{PAGE}/invite", data={"csrf_token": token, "email": person.email, "role": "member"})
    assert twice.status_code == 409 and "already a member" in twice.text

    await client.post("/logout", data={"csrf_token": token})
    join = await client.get("/join")
    assert join.status_code == 200 and "data-from-fragment" in join.text
    join_token = csrf_of(join.text)
    short = await client.post("/join", data={"csrf_token": join_token, "token": link.group(1), "password": "short"})
    assert short.status_code == 422 and "10 characters" in short.text
    empty = await client.post("/join", data={"csrf_token": join_token, "token": "", "password": "x"})
    assert empty.status_code == 422
    # The whole link pasted works as well as the token alone.
    joined = await client.post("/join", data={"csrf_token": join_token, "token": link.group(1), "password": PASSWORD})
    assert joined.status_code == 303 and joined.headers["location"] == "/?notice=joined"
    home = await client.get("/settings/account")
    assert home.status_code == 200 and email in home.text, home.text[-1500:]
    # The link sent again by the person who used it (a second press, a resubmitted form): to the account, no error.
    again = await client.post(
        "/join", data={"csrf_token": csrf_of(home.text), "token": link.group(1), "password": PASSWORD}
    )
    assert again.status_code == 303 and again.headers["location"] == "/?notice=joined"
    # Anybody else sending it finds it used.
    await client.post("/logout", data={"csrf_token": csrf_of((await client.get("/")).text)})
    used = await client.post(
        "/join", data={"csrf_token": await csrf_token(client, "/join"), "token": link.group(1), "password": PASSWORD}
    )
    assert used.status_code == 422 and "used already" in used.text


async def test_revoke_invitation_and_join_with_existing_user(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await sign_in(client, person)
    token = csrf_of((await client.get(PAGE)).text)
    first = await client.post(
        f"{PAGE}/invite", data={"csrf_token": token, "email": "gone@example.com", "role": "viewer"}
    )
    revoked_link = _LINK.search(first.text)
    assert revoked_link
    invitation_id = re.search(r'data-invitation-id="([^"]+)"', first.text)
    assert invitation_id
    done = await client.post(f"{PAGE}/invitations/{invitation_id.group(1)}/revoke", data={"csrf_token": token})
    assert done.status_code == 303
    assert "gone@example.com" not in (await client.get(PAGE)).text

    made = await client.post(f"{PAGE}/invite", data={"csrf_token": token, "email": other_person.email, "role": "admin"})
    link = _LINK.search(made.text)
    assert link
    await client.post("/logout", data={"csrf_token": token})
    join_token = csrf_of((await client.get("/join")).text)
    fragment = link.group(1).rpartition("#")[2]
    dead = await client.post(
        "/join", data={"csrf_token": join_token, "token": revoked_link.group(1), "password": PASSWORD}
    )
    assert dead.status_code == 422 and "revoked" in dead.text
    wrong = await client.post(
        "/join", data={"csrf_token": join_token, "token": fragment, "password": "wrong-password-1"}
    )
    assert wrong.status_code == 401 and "wrong password" in wrong.text
    joined = await client.post("/join", data={"csrf_token": join_token, "token": fragment, "password": PASSWORD})
    assert joined.status_code == 303
    assert (await _roles(client, person))[other_person.email] == "admin"
