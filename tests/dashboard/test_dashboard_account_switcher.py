"""The account switcher (DESIGN "Teams": a user in several accounts): the navigation lists a person's accounts
with their role in each only when there are two or more; switching shows the other account's content and keys with
the role held there; a forged switch is a 404 that changes nothing; a person removed from the account they are
working in moves to another of theirs (or signs in again when none is left); accepting an invitation switches to the
account joined, and sending the used link again is harmless."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import PASSWORD, Person, csrf_of, csrf_token, sign_in
from helpers.factories import TEST_ACTOR, Account, make_account
from helpers.teams import make_personal_key
from vibexp.core.access import Caller, Role
from vibexp.core.db import session_scope
from vibexp.core.members import usecases as members
from vibexp.core.users import service as users
from vibexp.core.users.models import User

SWITCHER = 'data-testid="account-switcher"'
NOTICE = re.compile(r'data-testid="page-notice">([^<]+)<')


async def _join(factory: async_sessionmaker[AsyncSession], person: Person, account: Account, role: Role) -> None:
    """``person`` becomes a member of ``account`` with ``role`` (as accepting an invitation makes them one)."""
    async with session_scope(factory, write=True) as session:
        user = await users.find_user(session, email=person.email)
        assert user is not None
        await users.join(session, tenant_id=account.tenant.id, user=user, role=role, actor=TEST_ACTOR)


async def _user_id(factory: async_sessionmaker[AsyncSession], person: Person) -> str:
    async with session_scope(factory) as session:
        user = await users.find_user(session, email=person.email)
        assert isinstance(user, User)
        return user.id


async def _remove(factory: async_sessionmaker[AsyncSession], person: Person, account: Account) -> None:
    async with session_scope(factory, write=True) as session:
        await members.remove(session, caller=Caller.cli(account.tenant.id), user_id=await _user_id(factory, person))


async def _prompt(client: httpx.AsyncClient, account: Account, name: str) -> str:
    made = await client.post("/api/v1/prompts", headers=account.headers, json={"name": name, "content": "Hi"})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _prompt_names(client: httpx.AsyncClient, account: Account) -> set[str]:
    listed = await client.get("/api/v1/prompts", headers=account.headers)
    assert listed.status_code == 200, listed.text
    return {item["name"] for item in listed.json()["items"]}


async def _switch(client: httpx.AsyncClient, token: str, account: Account | str, next: str = "/") -> httpx.Response:
    tenant_id = account if isinstance(account, str) else account.tenant.id
    return await client.post("/account/switch", data={"csrf_token": token, "account": tenant_id, "next": next})


def _notice(page: str) -> str | None:
    found = NOTICE.search(page)
    return found.group(1) if found else None


async def test_a_person_in_one_account_sees_no_switcher(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    for path in ("/", "/settings/account", "/prompts"):
        page = await client.get(path)
        assert page.status_code == 200 and person.email in page.text
        assert SWITCHER not in page.text and 'action="/account/switch"' not in page.text


async def test_switching_shows_the_other_accounts_content_keys_and_role(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Owner of their own account, viewer in another: each account's prompts and keys, and what each role may."""
    mine, theirs = person.account, other_person.account
    await _join(session_factory, person, theirs, Role.viewer)
    alpha = await _prompt(client, mine, "alpha-prompt")
    await _prompt(client, theirs, "beta-prompt")
    await make_personal_key(session_factory, tenant_id=mine.tenant.id, email=person.email, name="alpha-laptop")
    await make_personal_key(session_factory, tenant_id=theirs.tenant.id, email=person.email, name="beta-laptop")
    await sign_in(client, person)

    home = await client.get("/")
    assert home.status_code == 200 and SWITCHER in home.text
    assert f"<strong>{mine.tenant.name}</strong>" in home.text  # the overview names the account: the home one
    # The menu: the current account marked, the other one a button naming the role held there.
    assert re.search(
        rf'aria-current="true"><span class="account-choice-name">{mine.tenant.name}</span> '
        r'<span class="account-role">owner</span>',
        home.text,
    )
    assert re.search(
        rf'name="account" value="{theirs.tenant.id}"><span class="account-choice-name">'
        rf'{theirs.tenant.name}</span> <span class="account-role">viewer</span>',
        home.text,
    )
    prompts = await client.get("/prompts")
    assert "alpha-prompt" in prompts.text and "beta-prompt" not in prompts.text
    keys = await client.get("/settings/api-keys")
    assert "alpha-laptop" in keys.text and "beta-laptop" not in keys.text
    assert (await client.get("/settings/members")).status_code == 200
    old_token = csrf_of(home.text)

    # From a prompt's own page (it belongs to the first account): to the same kind of page, the prompt list.
    switched = await _switch(client, old_token, theirs, next=f"/prompts/{alpha}")
    assert switched.status_code == 303 and switched.headers["location"] == "/prompts?notice=switched"
    there = await client.get(switched.headers["location"])
    assert there.status_code == 200
    assert "beta-prompt" in there.text and "alpha-prompt" not in there.text
    assert _notice(there.text) == f"You are now working in {theirs.tenant.name}, as viewer."
    assert re.search(
        rf'aria-current="true"><span class="account-choice-name">{theirs.tenant.name}</span> '
        r'<span class="account-role">viewer</span>',
        there.text,
    )
    keys = await client.get("/settings/api-keys")
    assert "beta-laptop" in keys.text and "alpha-laptop" not in keys.text
    assert (await client.get(f"/prompts/{alpha}")).status_code == 404  # the first account's prompt is not here

    # The viewer's role: no Members page, no writes (the 403 page), and nothing was written.
    assert (await client.get("/settings/members")).status_code == 403
    token = csrf_of(there.text)
    refused = await client.post("/prompts/new", data={"csrf_token": token, "name": "gamma", "content": "x"})
    assert refused.status_code == 403 and 'data-testid="error-page"' in refused.text
    assert await _prompt_names(client, theirs) == {"beta-prompt"}

    # A form still open from the first account (its CSRF token) is refused, not run in this one.
    stale = await client.post("/prompts/new", data={"csrf_token": old_token, "name": "delta", "content": "x"})
    assert stale.status_code == 403 and "form has expired" in stale.text
    assert await _prompt_names(client, mine) == {"alpha-prompt"}

    # And back: an owner again, from a Settings page to the same Settings page.
    back = await _switch(client, token, mine, next="/settings/members")
    assert back.status_code == 303 and back.headers["location"] == "/settings/members?notice=switched"
    members_page = await client.get(back.headers["location"])
    assert members_page.status_code == 200
    assert _notice(members_page.text) == f"You are now working in {mine.tenant.name}, as owner."
    # A page the role in the other account cannot open (the audit log: a viewer's 403) lands on the overview there.
    overview = await _switch(client, csrf_of(members_page.text), theirs, next="/settings/audit-log")
    assert overview.status_code == 303 and overview.headers["location"] == "/?notice=switched"


async def test_a_forged_switch_is_a_404_and_changes_nothing(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    third = await make_account(session_factory)
    await _join(session_factory, person, third, Role.member)
    await sign_in(client, person)
    home = await client.get("/")
    token = csrf_of(home.text)
    for target in (other_person.account.tenant.id, "", "not-an-id", "x" * 36):
        forged = await _switch(client, token, target)
        assert forged.status_code == 404, target
        assert 'data-testid="error-page"' in forged.text and "not a member of that account" in forged.text
        assert "set-cookie" not in forged.headers
    still = await client.get("/")
    assert f"<strong>{person.account.tenant.name}</strong>" in still.text and csrf_of(still.text) == token
    too_long = await _switch(client, token, "x" * 37)  # longer than any id: the form's bound
    assert too_long.status_code == 422
    no_csrf = await client.post("/account/switch", data={"account": third.tenant.id})
    assert no_csrf.status_code == 403 and "set-cookie" not in no_csrf.headers
    assert f"<strong>{person.account.tenant.name}</strong>" in (await client.get("/")).text
    # Signed out: the sign-in page, whatever the form names.
    await client.post("/logout", data={"csrf_token": token})
    anonymous = await _switch(client, await csrf_token(client), third)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"


async def test_removed_from_the_current_account_moves_to_another_then_signs_out(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Removed from the account they work in, a person still in another one lands there with a notice (their request
    not done); removed from every account, they must sign in again."""
    mine, theirs = person.account, other_person.account
    await _join(session_factory, person, theirs, Role.member)
    await sign_in(client, person)
    moved = await _switch(client, csrf_of((await client.get("/")).text), theirs, next="/prompts")
    assert moved.status_code == 303
    token = csrf_of((await client.get("/prompts")).text)

    await _remove(session_factory, person, theirs)
    write = await client.post("/prompts/new", data={"csrf_token": token, "name": "late", "content": "x"})
    assert write.status_code == 303 and write.headers["location"] == "/?notice=account-left"
    assert "set-cookie" in write.headers
    assert "late" not in await _prompt_names(client, theirs) | await _prompt_names(client, mine)
    landed = await client.get(write.headers["location"])
    assert landed.status_code == 200 and f"<strong>{mine.tenant.name}</strong>" in landed.text
    assert _notice(landed.text) == (
        "You are no longer a member of the account you were working in. "
        f"This is {mine.tenant.name}, another of your accounts, where you are owner."
    )
    assert SWITCHER not in landed.text  # one account left: no switcher
    assert (await _switch(client, csrf_of(landed.text), theirs)).status_code == 404  # no way back

    # A page opened after the removal goes the same way.
    await _join(session_factory, person, theirs, Role.viewer)
    await _switch(client, csrf_of((await client.get("/")).text), theirs)
    await _remove(session_factory, person, theirs)
    page = await client.get("/settings/api-keys")
    assert page.status_code == 303 and page.headers["location"] == "/?notice=account-left"

    # Out of every account (another owner keeps their own): the session ends.
    await _join(session_factory, other_person, mine, Role.owner)
    await _remove(session_factory, person, mine)
    gone = await client.get("/settings/api-keys")
    assert gone.status_code == 303 and gone.headers["location"] == "/login?next=/settings/api-keys"


async def test_accepting_an_invitation_switches_and_sending_it_again_is_harmless(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    theirs = other_person.account
    async with session_scope(session_factory, write=True) as session:
        made = await members.invite(session, caller=Caller.cli(theirs.tenant.id), email=person.email, role=Role.member)
        link = f"http://testserver/join#{made.token}"
    await sign_in(client, person)
    before = await client.get("/")
    join_page = await client.get("/join")
    form: dict[str, Any] = {"csrf_token": csrf_of(join_page.text), "token": link, "password": PASSWORD}

    joined = await client.post("/join", data=form)
    assert joined.status_code == 303 and joined.headers["location"] == "/?notice=joined"
    overview = await client.get("/")
    assert f"<strong>{theirs.tenant.name}</strong>" in overview.text and SWITCHER in overview.text
    assert (
        _notice((await client.get(joined.headers["location"])).text) == f"You joined {theirs.tenant.name}, as member."
    )
    assert csrf_of(overview.text) != csrf_of(before.text)  # a new CSRF token for the new account ...
    # ... in the same session: signing out ends the session the invitation was accepted in, and the cookie from before.
    old_cookie = client.cookies.get("vibexp_session")
    assert old_cookie

    # Sent again (a second press, a resubmitted form with a fresh token): to the account, not an error.
    again = await client.post("/join", data={**form, "csrf_token": csrf_of(overview.text)})
    assert again.status_code == 303 and again.headers["location"] == "/?notice=joined"
    assert f"<strong>{theirs.tenant.name}</strong>" in (await client.get("/")).text
    # The old form as it was (its CSRF token from before joining) is refused and changes nothing.
    stale = await client.post("/join", data=form)
    assert stale.status_code == 403
    assert f"<strong>{theirs.tenant.name}</strong>" in (await client.get("/")).text


async def test_the_switcher_costs_no_query_of_its_own(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The memberships come with the person (one query, the accounts joined in): a page shows the switcher for a
    person in two accounts with the same statements as for a person in one."""
    engine = session_factory.kw["bind"]
    statements: list[str] = []
    # Only the page's own statements: the app's background pollers (the key and grant caches, the change feed) run in
    # tasks started before this flag was set, so their context does not carry it.
    in_request: ContextVar[bool] = ContextVar("in_request", default=False)

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if in_request.get():
            statements.append(" ".join(statement.split()))

    async def page_statements() -> list[str]:
        statements.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        token = in_request.set(True)
        try:
            page = await client.get("/settings/account")
        finally:
            in_request.reset(token)
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert page.status_code == 200
        return [s for s in statements if "memberships" in s or "FROM tenants" in s]

    await sign_in(client, person)
    single = await page_statements()
    await _join(session_factory, person, other_person.account, Role.viewer)
    double = await page_statements()
    assert SWITCHER in (await client.get("/settings/account")).text
    assert len(single) == len(double) == 1, (single, double)
    assert "JOIN tenants" in double[0] and "memberships" in double[0]
