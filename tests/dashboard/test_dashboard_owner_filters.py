"""The Alerts and Usage pages by owner (issue 28, "Teams"): each alert names its key's owner, and both pages take
the key list's "Mine / Service / Everyone's" filter (``?owner=me|service|all``; anything else is the 422 page);
"Acknowledge all" acknowledges what the filter shows; a member may not read alerts (no ``audit:read``), as over
REST."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, sign_in
from helpers import teams
from vibexp.api.dashboard.routes.usage import PAGE_SIZE
from vibexp.core.access import Caller, Role
from vibexp.core.alerts import service as alerts
from vibexp.core.alerts.models import AlertKind
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.usage import usecases as usage
from vibexp.core.usage.models import KeyAction

Factory = async_sessionmaker[AsyncSession]
_ALERT_OWNER = re.compile(r'data-alert-id="([^"]+)".*?data-testid="alert-owner">(.*?)</span></td>', re.S)
_ACTION = re.compile(r"<code>(act-[\w-]+)</code>")


@dataclass
class Keys:
    """The signed-in owner's personal key, a member (and their key) and the account's service key."""

    mine: str
    member: teams.Person
    service: str


async def _keys(factory: Factory, person: Person) -> Keys:
    tenant_id = person.account.tenant.id
    _, mine = await teams.make_personal_key(factory, tenant_id=tenant_id, email=person.email, name="my laptop")
    member = await teams.make_person(factory, tenant_id=tenant_id, role=Role.member)
    return Keys(mine=mine, member=member, service=person.account.key_id)


async def _raise(factory: Factory, person: Person, key_id: str) -> str:
    async with session_scope(factory) as session:
        alert = await alerts.raise_alert(
            session, tenant_id=person.account.tenant.id, key_id=key_id, kind=AlertKind.new_network, details={}
        )
        assert alert is not None
        return alert.id


def _owners(html: str) -> dict[str, str]:
    """Each alert row's owner line, as text."""
    return {alert_id: re.sub(r"<[^>]+>", "", owner) for alert_id, owner in _ALERT_OWNER.findall(html)}


async def test_alerts_page_names_owners_and_filters(
    client: httpx.AsyncClient, person: Person, session_factory: Factory
) -> None:
    keys = await _keys(session_factory, person)
    service = await _raise(session_factory, person, keys.service)
    mine = await _raise(session_factory, person, keys.mine)
    theirs = await _raise(session_factory, person, keys.member.key_id)
    await sign_in(client, person)

    page = await client.get("/alerts")
    assert page.status_code == 200
    assert 'data-testid="owner-filter"' in page.text
    assert _owners(page.text) == {service: "Service key", mine: person.email, theirs: keys.member.email}
    assert set(_owners((await client.get("/alerts?owner=me")).text)) == {mine}
    assert set(_owners((await client.get("/alerts?owner=service")).text)) == {service}
    assert set(_owners((await client.get("/alerts?owner=all")).text)) == {service, mine, theirs}
    assert (await client.get("/alerts?owner=nobody")).status_code == 422

    # "Acknowledge all" under a filter acknowledges what it shows, and the page keeps the filter.
    filtered = await client.get("/alerts?owner=service")
    done = await client.post(
        "/alerts/acknowledge", data={"csrf_token": csrf_of(filtered.text), "owner": "service"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"].endswith("/alerts?owner=service&count=1")
    after = await client.get("/alerts")
    open_part = after.text.split('data-testid="acknowledged-alerts-table"')[0]
    assert f'data-alert-id="{service}"' not in open_part
    assert f'data-alert-id="{mine}"' in open_part and f'data-alert-id="{theirs}"' in open_part
    refused = await client.post("/alerts/acknowledge", data={"csrf_token": csrf_of(after.text), "owner": "x"})
    assert refused.status_code == 422


async def test_a_member_may_not_read_alerts(
    client: httpx.AsyncClient, person: Person, session_factory: Factory
) -> None:
    keys = await _keys(session_factory, person)
    await _raise(session_factory, person, keys.member.key_id)
    await sign_in(client, Person(email=keys.member.email, password=teams.PASSWORD, account=person.account))
    for url in ("/alerts", "/alerts?owner=me", "/alerts?owner=service"):
        page = await client.get(url)
        assert page.status_code == 403 and "audit:read" in page.text


async def test_usage_actions_filter_by_owner(
    client: httpx.AsyncClient, person: Person, session_factory: Factory
) -> None:
    keys = await _keys(session_factory, person)
    now = utcnow()
    base = {"tenant_id": person.account.tenant.id, "method": "GET", "route": "/api/v1/prompts", "status": 200}
    async with session_scope(session_factory) as session:
        for i in range(PAGE_SIZE + 1):  # two pages of service-key actions (the log is newest id first)
            at = now - timedelta(minutes=1, seconds=PAGE_SIZE - i)
            session.add(KeyAction(key_id=keys.service, at=at, action=f"act-service-{i}", tool_type="curl", **base))
        await session.flush()
        for name, key_id in (("act-mine", keys.mine), ("act-theirs", keys.member.key_id)):
            session.add(KeyAction(key_id=key_id, at=now, action=name, tool_type="curl", **base))
    await sign_in(client, person)

    everyone = await client.get("/usage")
    assert everyone.status_code == 200 and 'data-testid="owner-filter"' in everyone.text
    assert {"act-mine", "act-theirs"} <= set(_ACTION.findall(everyone.text))
    assert _ACTION.findall((await client.get("/usage?owner=me")).text) == ["act-mine"]
    service = await client.get("/usage?owner=service")
    shown = _ACTION.findall(service.text)
    assert len(shown) == PAGE_SIZE and all(name.startswith("act-service-") for name in shown)
    older = re.search(r'href="(/usage\?[^"]+)" data-testid="older-actions"', service.text)
    assert older and "owner=service" in older.group(1)  # the next page keeps the filter
    rest = await client.get(older.group(1).replace("&amp;", "&"))
    assert _ACTION.findall(rest.text) == ["act-service-0"]
    assert (await client.get("/usage?owner=someone")).status_code == 422


async def test_a_members_action_log_is_their_own_keys(person: Person, session_factory: Factory) -> None:
    """The usage use case reads ``owner`` as the key list does: a member's answer is their own keys' actions, and a
    filter naming someone else narrows it to nothing (never widens it)."""
    keys = await _keys(session_factory, person)
    base = {"tenant_id": person.account.tenant.id, "method": "GET", "route": "/", "status": 200, "tool_type": "curl"}
    async with session_scope(session_factory) as session:
        for name, key_id in (("act-owner", keys.mine), ("act-member", keys.member.key_id), ("act-ci", keys.service)):
            session.add(KeyAction(key_id=key_id, at=utcnow(), action=name, **base))
    member = Caller.signed_in(
        tenant_id=person.account.tenant.id,
        user_id=keys.member.user_id,
        name=keys.member.email,
        client_ip=None,
        user_agent=None,
        role=Role.member,
    )

    async def actions(owner: str | None) -> list[str]:
        async with session_factory() as session:
            page = await usage.list_actions(session, caller=member, owner=owner)
            return [action.action for action in page.items]

    assert await actions(None) == ["act-member"]
    assert await actions("me") == ["act-member"]
    assert await actions(person.email) == [] and await actions("service") == []


def _breakdown(html: str) -> dict[str, int]:
    found = re.findall(r'data-outcome="(\w+)" aria-label="[^"]*">([\d,]+)</a>', html)
    return {name: int(value.replace(",", "")) for name, value in found}


async def test_a_member_sees_the_usage_of_their_own_keys(
    client: httpx.AsyncClient, person: Person, session_factory: Factory
) -> None:
    """The Usage page opens for a member (it is in their navigation): their keys' counts, charts and actions only,
    without the failed authentications (counted from the alerts, which need ``audit:read``) or the owner filter."""
    keys = await _keys(session_factory, person)
    base = {"tenant_id": person.account.tenant.id, "method": "GET", "route": "/", "tool_type": "curl"}
    async with session_scope(session_factory) as session:
        for name, key_id, status in (
            ("act-member", keys.member.key_id, 200),
            ("act-owner", keys.mine, 200),
            ("act-owner-refused", keys.mine, 403),
            ("act-ci", keys.service, 500),
        ):
            session.add(KeyAction(key_id=key_id, at=utcnow(), action=name, status=status, **base))
    await sign_in(client, Person(email=keys.member.email, password=teams.PASSWORD, account=person.account))
    page = await client.get("/usage")
    assert page.status_code == 200, page.text[:500]
    assert _ACTION.findall(page.text) == ["act-member"]
    assert _breakdown(page.text) == {"ok": 1, "refused": 0, "rate_limited": 0, "error": 0}
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "1 request with your keys" in text and "last 24 hours · 1 request, peak 1" in text  # the charts: theirs
    assert "last 7 days · 1 request, peak 1" in text and "Failed authentications" not in text
    assert 'data-testid="owner-filter"' not in page.text and "act-owner" not in page.text
    assert (await client.get("/usage?owner=service")).status_code == 200  # narrows nothing beyond their own
