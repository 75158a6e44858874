"""The usage page (issue 31 item 5): the action log filtered by key, tool and status and paginated, the breakdown by
outcome with the failed authentications the alerts counted, and tool types by name."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, sign_in
from helpers import teams
from helpers.factories import TEST_ACTOR
from vibexp.api.dashboard.routes.usage import PAGE_SIZE
from vibexp.core.access import Caller, Role
from vibexp.core.alerts.models import Alert, AlertKind
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.oauth import usecases as oauth
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.outcomes import OUTCOMES, outcome_of
from vibexp.core.usage.tool_names import TOOL_NAMES, tool_name
from vibexp.core.usage.tool_type import ToolType

_ROW = re.compile(r'<tr data-outcome="(\w+)">.*?<code>(act-[\w-]+)</code>', re.S)
_KEY_SELECT = re.compile(r'<select id="filter-key" name="key">(.*?)</select>', re.S)
_NEXT = re.compile(r'href="(/usage\?[^"]+)" data-testid="older-actions"')


def rows(html: str) -> list[tuple[str, str]]:
    """(outcome, action) of each action row on the page."""
    return _ROW.findall(html)


def key_select(html: str) -> str:
    """The inside of the "Key or app" select."""
    match = _KEY_SELECT.search(html)
    assert match, "no key filter on the page"
    return match[1]


def key_choices(html: str) -> dict[str, list[tuple[str, str]]]:
    """The "Key or app" select's options (value, text) by optgroup label ("" for those outside any group)."""
    groups: dict[str, list[tuple[str, str]]] = {}
    label = ""
    for group, value, text in re.findall(
        r'<optgroup label="([^"]+)">|<option value="([^"]*)"[^>]*>([^<]*)<', key_select(html)
    ):
        if group:
            label = group
        else:
            groups.setdefault(label, []).append((value, text))
    return groups


def breakdown(html: str) -> dict[str, int]:
    found = re.findall(r'data-outcome="(\w+)" aria-label="[^"]*">([\d,]+)</a>', html)
    return {name: int(value.replace(",", "")) for name, value in found}


def test_every_tool_type_has_a_name() -> None:
    assert set(TOOL_NAMES) == set(ToolType)
    assert len(set(TOOL_NAMES.values())) == len(TOOL_NAMES)
    assert tool_name("python_requests") == "Python requests" and tool_name("claude_code") == "Claude Code"
    assert tool_name(None) == "—" and tool_name("from-a-newer-server") == "from-a-newer-server"


def test_each_status_has_exactly_one_outcome() -> None:
    for status in range(100, 600):
        covering = [o for o, info in OUTCOMES.items() if any(lo <= status < hi for lo, hi in info.ranges)]
        assert len(covering) == 1, (status, covering)
    expected = {200: "ok", 204: "ok", 302: "ok", 401: "refused", 403: "refused", 429: "rate_limited"}
    expected |= {400: "error", 404: "error", 412: "error", 422: "error", 500: "error", 503: "error"}
    assert {status: outcome_of(status).value for status in expected} == expected


#: (status, tool) of the seeded actions on the person's first key; the second key gets one 200 from curl.
SEEDED = [
    (200, ToolType.python_requests),
    (201, ToolType.claude_code),
    (403, ToolType.python_requests),
    (401, ToolType.curl),
    (429, ToolType.python_requests),
    (429, ToolType.python_requests),
    (404, ToolType.claude_code),
    (500, ToolType.python_requests),
    (422, ToolType.curl),
]


async def seed(factory: async_sessionmaker[AsyncSession], person: Person, other: Person, *, extra: int = 0) -> str:
    """SEEDED on the person's key, one action on a second key, ``extra`` more 200s, and failed authentications in
    alerts (3 + 2, and 7 of another account); the second key's id."""
    now = utcnow()
    tenant_id = person.account.tenant.id
    async with session_scope(factory) as session:
        second = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant_id, name="second", source="cli")
        base = {"tenant_id": tenant_id, "method": "GET", "route": "/api/v1/prompts", "client_ip": "192.0.2.1"}
        for i, (status, tool) in enumerate(SEEDED):
            session.add(
                KeyAction(
                    key_id=person.account.key_id,
                    at=now - timedelta(minutes=60 - i),
                    action=f"act-{i}",
                    status=status,
                    tool_type=tool.value,
                    **base,
                )
            )
        session.add(
            KeyAction(key_id=second.record.id, at=now, action="act-second", status=200, tool_type="curl", **base)
        )
        for i in range(extra):
            session.add(
                KeyAction(
                    key_id=person.account.key_id,
                    at=now - timedelta(hours=2, seconds=i),
                    action=f"act-extra-{i}",
                    status=200,
                    tool_type="node",
                    **base,
                )
            )
        old = now - timedelta(days=9)  # outside the breakdown's 7 days, still in the log
        session.add(
            KeyAction(key_id=person.account.key_id, at=old, action="act-old", status=500, tool_type="node", **base)
        )
        stranger = {**base, "tenant_id": other.account.tenant.id}
        session.add(
            KeyAction(
                key_id=other.account.key_id, at=now, action="act-stranger", status=200, tool_type="curl", **stranger
            )
        )
        for key_id, tenant, kind, count in (
            (person.account.key_id, tenant_id, AlertKind.failed_auth, 3),
            (second.record.id, tenant_id, AlertKind.retired_key_used, 2),
            (person.account.key_id, tenant_id, AlertKind.new_network, 11),  # not an authentication failure
            (other.account.key_id, other.account.tenant.id, AlertKind.failed_auth, 7),
        ):
            session.add(Alert(tenant_id=tenant, key_id=key_id, kind=kind.value, count=count))
        return second.record.id


async def test_breakdown_by_outcome_with_failed_authentications(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await seed(session_factory, person, other_person)
    await sign_in(client, person)
    html = (await client.get("/usage")).text
    assert breakdown(html) == {"ok": 3, "refused": 2, "rate_limited": 2, "error": 3, "failed_auth": 5}
    assert "10 requests with this account" in html
    names = {action: outcome for outcome, action in rows(html)}
    assert "act-stranger" not in names and names["act-old"] == "error"  # the log keeps what the breakdown leaves
    assert "Python requests" in html and "Claude Code" in html and ">python_requests<" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=ok", {"act-0", "act-1", "act-second"}),
        ("status=refused", {"act-2", "act-3"}),
        ("status=rate_limited", {"act-4", "act-5"}),
        ("status=error", {"act-6", "act-7", "act-8", "act-old"}),
        ("tool=curl", {"act-3", "act-8", "act-second"}),
        ("tool=python_requests&status=rate_limited", {"act-4", "act-5"}),
        ("key={second}", {"act-second"}),
        ("key={second}&status=error", set()),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    person: Person,
    other_person: Person,
    session_factory: async_sessionmaker[AsyncSession],
    query: str,
    expected: set[str],
) -> None:
    second = await seed(session_factory, person, other_person)
    await sign_in(client, person)
    page = await client.get("/usage?" + query.format(second=second))
    assert page.status_code == 200
    found = rows(page.text)
    assert {action for _, action in found} == expected
    if not expected:
        assert "No actions match these filters." in page.text
    for name, value in (part.split("=") for part in query.split("&")):
        value = value.format(second=second)
        assert re.search(rf'<option value="{value}" selected>', page.text), name  # the form keeps the filter


async def test_pagination_keeps_the_filters(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    extra = PAGE_SIZE + 30
    await seed(session_factory, person, other_person, extra=extra)
    await sign_in(client, person)
    seen: list[str] = []
    url: str | None = "/usage?status=ok"
    pages = 0
    while url is not None:
        html = (await client.get(url)).text
        found = rows(html)
        assert all(outcome == "ok" for outcome, _ in found) and len(found) <= PAGE_SIZE
        seen += [action for _, action in found]
        match = _NEXT.search(html)
        url = match.group(1).replace("&amp;", "&") if match else None
        if url is not None:
            assert "status=ok" in url
        pages += 1
    assert pages == 2
    assert len(seen) == len(set(seen)) == extra + 3  # every OK action once, the last recorded first
    assert seen[0] == f"act-extra-{extra - 1}" and seen[extra - 1] == "act-extra-0"
    assert [a for a in seen if not a.startswith("act-extra")] == ["act-second", "act-1", "act-0"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=teapot", "unknown status filter"),
        ("tool=python-requests", "unknown tool"),
        ("cursor=not-a-cursor", "invalid cursor"),
        ("cursor=YWJj", "invalid cursor"),  # "abc": decodes, but is no action's id
    ],
)
async def test_bad_filters_are_a_readable_error(
    client: httpx.AsyncClient, person: Person, query: str, message: str
) -> None:
    await sign_in(client, person)
    response = await client.get("/usage?" + query)
    assert response.status_code == 422 and message in response.text
    assert response.headers["content-type"].startswith("text/html")


async def grant_with_action(
    factory: async_sessionmaker[AsyncSession], tenant_id: str, member: teams.Person, action: str
) -> str:
    """A connected app of ``member`` (the real OAuth flow's grant) and one action of it in the log; the grant's id."""
    grant = await teams.make_grant(factory, tenant_id=tenant_id, person=member, scopes=["prompts:read"])
    async with session_scope(factory, write=True) as session:
        session.add(
            KeyAction(
                grant_id=grant.grant_id,
                tenant_id=tenant_id,
                at=utcnow(),
                method="POST",
                route="/mcp/v1/connect",
                action=action,
                status=200,
                tool_type="claude_code",
                client_ip="192.0.2.9",
            )
        )
    return grant.grant_id


async def two_members_apps(
    factory: async_sessionmaker[AsyncSession], person: Person
) -> tuple[teams.Person, str, teams.Person, str]:
    """Two members of the person's account, each with a connected app and an action of it; the second's revoked."""
    tenant_id = person.account.tenant.id
    alice = await teams.make_person(factory, tenant_id=tenant_id, role=Role.member)
    bob = await teams.make_person(factory, tenant_id=tenant_id, role=Role.member)
    alices = await grant_with_action(factory, tenant_id, alice, "act-alice-app")
    bobs = await grant_with_action(factory, tenant_id, bob, "act-bob-app")
    async with session_scope(factory, write=True) as session:
        await oauth.revoke_grant(session, caller=Caller.cli(tenant_id), grant_id=bobs)
    return alice, alices, bob, bobs


async def test_the_key_filter_lists_connected_apps_and_filters_by_one(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    second = await seed(session_factory, person, other_person)
    alice, alices, bob, bobs = await two_members_apps(session_factory, person)
    await sign_in(client, person)  # the account's owner: everyone's keys and apps
    html = (await client.get("/usage")).text
    assert '<label for="filter-key">Key or app</label>' in html
    choices = key_choices(html)
    assert choices[""] == [("", "Any key or app")]
    assert second in {value for value, _ in choices["Keys"]} and person.account.key_id in dict(choices["Keys"])
    apps = dict(choices["Connected apps"])  # make_grant's spare consent is a grant of its own, listed too
    assert apps[alices] == f"Leaky tool (OAuth) · {alice.email}"
    assert apps[bobs] == f"Leaky tool (OAuth) · {bob.email} · revoked"  # old actions keep their app: still a choice
    assert {text.split(" · ")[1] for text in apps.values()} == {alice.email, bob.email}
    assert {action for _, action in rows(html)} >= {"act-alice-app", "act-bob-app", "act-second"}

    for grant_id, action in ((alices, "act-alice-app"), (bobs, "act-bob-app")):
        page = await client.get("/usage", params={"key": grant_id})
        assert page.status_code == 200
        assert [name for _, name in rows(page.text)] == [action]  # that app's actions only
        assert re.findall(r'<option value="([^"]+)" selected>', key_select(page.text)) == [grant_id]  # kept


async def test_a_member_picks_only_their_own_connected_apps(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    alice, alices, bob, bobs = await two_members_apps(session_factory, person)
    await sign_in(client, Person(email=alice.email, password=teams.PASSWORD, account=person.account))
    html = (await client.get("/usage")).text
    choices = key_choices(html)
    apps = dict(choices["Connected apps"])
    assert alices in apps and set(apps.values()) == {f"Leaky tool (OAuth) · {alice.email}"}  # her own only
    assert [value for value, _ in choices["Keys"]] == [alice.key_id]
    assert bobs not in html and bob.email not in html
    # Another person's app by URL: none of its actions, and no choice of it on the form.
    page = await client.get("/usage", params={"key": bobs})
    assert page.status_code == 200 and rows(page.text) == [] and "No actions match these filters." in page.text
    assert " selected>" not in key_select(page.text)


async def test_an_unknown_key_id_shows_no_actions(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await seed(session_factory, person, other_person)
    await two_members_apps(session_factory, person)
    await sign_in(client, person)
    for unknown in ("not-an-id", "0190b8c2-0000-7000-8000-000000000000", other_person.account.key_id):
        page = await client.get("/usage", params={"key": unknown})
        assert page.status_code == 200 and rows(page.text) == []
        assert "No actions match these filters." in page.text
        assert " selected>" not in key_select(page.text)
