"""An OAuth grant is a credential like a key in usage, the action log, countries, alerts and the hourly limit (issue
#29; SQLite and PostgreSQL). Grants are minted by the real flow (register → consent → token, ``oauth_person``) and
used on ``/mcp/v1/connect`` through the in-process app, from chosen client addresses (httpx's ASGITransport sets the
socket peer, which is the client address when no trusted proxy is configured); the usage recorder is flushed by
hand, so every alert here comes from the real detectors and ``raise_alert``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.alert_sink import detector_of
from helpers.api_errors import assert_error
from helpers.factories import TEST_ACTOR, Account, make_account
from helpers.windows import away_from_minute_boundary, hours_around_now, inside_one_hour_window
from oauth.flow import LOCAL_BASE, Connect, Flow, person_flow
from vibexp.core.access import Role
from vibexp.core.account import update_tenant
from vibexp.core.alerts.detectors import DetectorLimits
from vibexp.core.alerts.models import Alert, AlertKind, GrantCountry, GrantNetwork, WebhookDelivery
from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import session_scope
from vibexp.core.geo import country_of
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate
from vibexp.core.usage.models import KeyAction
from vibexp.core.users.models import Membership

CONNECT = "/mcp/v1/connect"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
#: Each address's /24 differs from the others' and from the ``client_address`` fixture's (10.x.y.z).
HOME, ELSEWHERE = "192.168.71.5", "192.168.72.5"
#: Public addresses in two registered countries, as the shipped data says (tests/security/test_new_country.py).
ABROAD_ONE, ABROAD_TWO = "193.0.6.139", "8.8.8.8"

Addressed = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def from_address(app: FastAPI) -> AsyncIterator[Addressed]:
    """``from_address("192.0.2.1")``: an HTTP client on the in-process app calling from that address."""
    async with AsyncExitStack() as stack:

        def make(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            return httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE)

        made: dict[str, httpx.AsyncClient] = {}

        def get(address: str) -> httpx.AsyncClient:
            if address not in made:
                made[address] = make(address)
                stack.push_async_callback(made[address].aclose)
            return made[address]

        yield get


async def _rpc(
    http: httpx.AsyncClient, token: str, method: str, params: dict[str, Any], *, agent: str | None = None
) -> httpx.Response:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    if agent is not None:
        headers["User-Agent"] = agent
    return await http.post(
        CONNECT, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers=headers
    )


async def _call_tool(http: httpx.AsyncClient, token: str, tool: str = "list_prompts") -> None:
    answer = await _rpc(http, token, "tools/call", {"name": tool, "arguments": {}})
    assert answer.status_code == 200, answer.text
    assert "error" not in answer.json(), answer.text


async def _grant(session_factory: async_sessionmaker[AsyncSession], tenant_id: str) -> OAuthGrant:
    async with session_factory() as session:
        [grant] = (await session.scalars(select(OAuthGrant).where(OAuthGrant.tenant_id == tenant_id))).all()
    return grant


async def _set_tenant(session_factory: async_sessionmaker[AsyncSession], tenant_id: str, **values: Any) -> None:
    async with session_scope(session_factory, write=True) as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        await update_tenant(session, tenant=tenant, data=TenantUpdate(**values), actor=TEST_ACTOR, server_urls=[])


async def test_a_grants_tool_call_is_in_the_action_log_with_its_tool_and_tool_type_and_counted(
    app: FastAPI,
    account: Account,
    oauth_person: Connect,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    alice = await oauth_person()
    token = (await alice.tokens())["access_token"]
    # The client names itself at initialize (Claude Code); its later requests, with a generic User-Agent from the
    # same address, are tagged with that name.
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "claude-code", "version": "2"}}
    assert (await _rpc(alice.http, token, "initialize", hello)).status_code == 200
    await _call_tool(alice.http, token)
    await _call_tool(alice.http, token, "list_memories")
    await app.state.runtime.usage.flush()

    grant = await _grant(session_factory, account.tenant.id)
    async with session_factory() as session:
        rows = (await session.scalars(select(KeyAction).where(KeyAction.tenant_id == account.tenant.id))).all()
        membership = await session.get(Membership, (account.tenant.id, alice.person.user_id))
    assert sorted((r.action, r.tool_type, r.status, r.grant_id, r.key_id) for r in rows) == [
        ("list_memories", "claude_code", 200, grant.id, None),
        ("list_prompts", "claude_code", 200, grant.id, None),
        ("mcp:initialize", "claude_code", 200, grant.id, None),
    ]
    assert {r.route for r in rows} == {CONNECT} and {r.method for r in rows} == {"POST"}
    # Counted on the grant by the same flush (one place), and its person seen in the account.
    assert grant.request_count == 3 and grant.last_used_at is not None
    assert membership is not None and membership.last_seen_at is not None

    # The action log's readers: the whole account's (the service key), and the person's own.
    answer = await alice.http.get("/usage")
    assert answer.status_code == 200, answer.text
    assert "Test tool (OAuth) · " + alice.person.email in answer.text
    assert answer.text.count('data-credential="grant"') == 2  # the two actions, not the set-up
    assert "<code>list_memories</code>" in answer.text and "Claude Code" in answer.text
    filtered = await alice.http.get("/usage", params={"key": grant.id})
    assert filtered.text.count('data-credential="grant"') == 2

    # Over REST, as a key's usage: the person's own key reads it.
    answer = await alice.http.get(f"/api/v1/oauth/grants/{grant.id}/usage", headers=alice.person.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["grant_id"] == grant.id and body["request_count"] == 3 and body["last_used_at"]
    assert [(a["action"], a["tool_type"], a["status"]) for a in body["actions"]] == [
        ("list_memories", "claude_code", 200),
        ("list_prompts", "claude_code", 200),
    ]
    assert [(c["tool_type"], c["requests"]) for c in body["clients"]] == [("claude_code", 3)]
    assert body["countries"] == []  # a private address has none


async def test_a_grants_usage_over_rest_is_its_persons_or_an_admins_only(
    app: FastAPI, account: Account, oauth_person: Connect, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = await oauth_person(), await oauth_person()
    await _call_tool(alice.http, (await alice.tokens())["access_token"])
    grant = await _grant(session_factory, account.tenant.id)
    path = f"/api/v1/oauth/grants/{grant.id}/usage"
    assert (await alice.http.get(path, headers=account.headers)).status_code == 200  # the account's service key
    for headers, where in ((bob.person.headers, path), (account.headers, "/api/v1/oauth/grants/not-a-grant/usage")):
        refused = await bob.http.get(where, headers=headers)
        assert_error(refused, 404, "not_found")
    other = await make_account(session_factory)  # another account's key: not found either
    assert_error(await bob.http.get(path, headers=other.headers), 404, "not_found")
    too_long = await bob.http.get(f"/api/v1/oauth/grants/{'x' * 37}/usage", headers=account.headers)
    assert_error(too_long, 422)


async def test_a_member_sees_their_own_grants_actions_an_admin_everyones_filtered_by_owner(
    app: FastAPI, oauth_person: Connect, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob, admin = await oauth_person(), await oauth_person(), await oauth_person(Role.admin)
    await _call_tool(alice.http, (await alice.tokens())["access_token"])
    await app.state.runtime.usage.flush()
    assert 'data-credential="grant"' in (await alice.http.get("/usage")).text
    assert 'data-credential="grant"' not in (await bob.http.get("/usage")).text  # a member's: their own only
    assert 'data-credential="grant"' in (await admin.http.get("/usage")).text  # everyone's
    for owner in ("me", "service"):  # neither the admin's own credentials nor the service keys
        narrowed = await admin.http.get("/usage", params={"owner": owner})
        assert narrowed.status_code == 200 and 'data-credential="grant"' not in narrowed.text


async def test_new_network_for_a_grant_is_an_alert_naming_the_grant_and_its_person(
    app: FastAPI,
    account: Account,
    oauth_person: Connect,
    from_address: Addressed,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_scope(session_factory, write=True) as session:  # a webhook: the body names the credential
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        tenant.alert_webhook_url = "https://hooks.example.invalid/vibexp"
    alice = await oauth_person()
    token = (await alice.tokens())["access_token"]
    await _call_tool(from_address(HOME), token)
    await app.state.runtime.usage.flush()
    grant = await _grant(session_factory, account.tenant.id)
    async with session_factory() as session:
        assert (await session.scalars(select(Alert).where(Alert.grant_id == grant.id))).all() == []  # first place
    for _ in range(2):  # elsewhere, over two flushes: one alert
        await _call_tool(from_address(ELSEWHERE), token)
        await app.state.runtime.usage.flush()

    async with session_factory() as session:
        [alert] = (await session.scalars(select(Alert).where(Alert.tenant_id == account.tenant.id))).all()
        networks = (await session.scalars(select(GrantNetwork.network).where(GrantNetwork.grant_id == grant.id))).all()
        [delivery] = (await session.scalars(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id))).all()
        raised = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.tenant_id == account.tenant.id, AuditEvent.action == "alert.raised")
            )
        ).all()
    assert alert.kind == AlertKind.new_network and alert.grant_id == grant.id and alert.key_id is None
    assert alert.details["network"] == "192.168.72.0/24" and alert.details["client_ip"] == ELSEWHERE
    assert sorted(networks) == ["192.168.71.0/24", "192.168.72.0/24"]
    [event] = raised
    assert (event.target_type, event.target_id, event.target_name) == ("oauth_grant", grant.id, "Test tool (OAuth)")
    body = json.loads(delivery.payload)
    assert body["key_id"] is None and body["grant_id"] == grant.id
    assert body["credential"] == {"kind": "grant", "id": grant.id, "name": "Test tool (OAuth)"}
    assert body["owner"] == {"user_id": alice.person.user_id, "email": alice.person.email}

    # Over REST (the account's service key): the alert names the grant and its person, found by the grant's id
    # and by the person's owner filter.
    listed = await from_address(HOME).get("/api/v1/alerts", params={"key_id": grant.id}, headers=account.headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["grant_id"] == grant.id and item["key_id"] is None
    assert item["credential"] == {"kind": "grant", "id": grant.id}
    assert item["owner"] == {"user_id": alice.person.user_id, "email": alice.person.email}
    mine = await from_address(HOME).get(
        "/api/v1/alerts", params={"owner": alice.person.user_id}, headers=account.headers
    )
    assert [i["id"] for i in mine.json()["items"]] == [alert.id]


async def test_new_country_for_a_grant_records_its_countries_and_alerts(
    app: FastAPI,
    account: Account,
    oauth_person: Connect,
    from_address: Addressed,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    assert country_of(ABROAD_ONE) != country_of(ABROAD_TWO)
    alice = await oauth_person()
    token = (await alice.tokens())["access_token"]
    await _call_tool(from_address(ABROAD_ONE), token)
    await app.state.runtime.usage.flush()
    await _call_tool(from_address(ABROAD_TWO), token)
    await app.state.runtime.usage.flush()
    grant = await _grant(session_factory, account.tenant.id)
    async with session_factory() as session:
        countries = (await session.scalars(select(GrantCountry.country).where(GrantCountry.grant_id == grant.id))).all()
        alerts = (await session.scalars(select(Alert).where(Alert.grant_id == grant.id))).all()
        stored = (await session.execute(select(KeyAction.country).where(KeyAction.grant_id == grant.id))).all()
    assert sorted(countries) == sorted([country_of(ABROAD_ONE), country_of(ABROAD_TWO)])
    assert sorted(a.kind for a in alerts) == ["new_country", "new_network"]
    [new_country] = [a for a in alerts if a.kind == "new_country"]
    assert new_country.details["country"] == country_of(ABROAD_TWO)
    assert sorted(str(c) for (c,) in stored) == sorted([str(country_of(ABROAD_ONE)), str(country_of(ABROAD_TWO))])
    page = await alice.http.get("/usage")
    assert str(country_of(ABROAD_TWO)) in page.text


async def test_auto_revoke_on_revokes_the_grant_audited_and_its_token_stops(
    app: FastAPI,
    account: Account,
    oauth_person: Connect,
    from_address: Addressed,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _set_tenant(session_factory, account.tenant.id, auto_revoke_on=["new_network"])
    alice = await oauth_person()
    token = (await alice.tokens())["access_token"]
    await _call_tool(from_address(HOME), token)
    await app.state.runtime.usage.flush()
    assert (await _grant(session_factory, account.tenant.id)).revoked_at is None  # the first network revokes nothing
    await _call_tool(from_address(ELSEWHERE), token)
    await app.state.runtime.usage.flush()

    grant = await _grant(session_factory, account.tenant.id)
    assert grant.revoked_at is not None and grant.revoked_reason == "auto_revoked"
    async with session_factory() as session:
        [alert] = (await session.scalars(select(Alert).where(Alert.grant_id == grant.id))).all()
        [revoked] = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == account.tenant.id, AuditEvent.action == "oauth.revoked"
                )
            )
        ).all()
    assert alert.details["auto_revoked"] is True
    assert revoked.target_id == grant.id and revoked.actor_name == "alerts: auto_revoke_on"
    assert revoked.details["reason"] == "auto_revoked" and revoked.details["alert_id"] == alert.id
    # Revoked at commit in this process (GRANT_CHANGED), on others within the verifier's poll.
    refused = await _rpc(from_address(HOME), token, "tools/call", {"name": "list_prompts", "arguments": {}})
    assert refused.status_code == 401


async def test_a_grants_requests_count_against_the_hourly_limit_429_with_headers(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await inside_one_hour_window()  # the counts below must all fall in one hourly window
    limited = await make_account(session_factory, rate_limit=3)
    flow: Flow = await person_flow(client, session_factory, tenant_id=limited.tenant.id)
    token = (await flow.tokens())["access_token"]
    assert (await client.get("/api/v1/prompts", headers=limited.headers)).status_code == 200  # the key's: 1 of 3
    for remaining in (1, 0):
        answer = await _rpc(client, token, "tools/call", {"name": "list_prompts", "arguments": {}})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-limit"] == "3"
        assert answer.headers["x-ratelimit-remaining"] == str(remaining)
        assert answer.headers["ratelimit-policy"] == '"hourly";q=3;w=3600'
    limited_answer = await _rpc(client, token, "tools/call", {"name": "list_prompts", "arguments": {}})
    assert limited_answer.status_code == 429
    assert limited_answer.headers["content-type"].startswith("application/json")
    body = limited_answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == "rate_limited" and body["error"]["message"]
    assert int(limited_answer.headers["retry-after"]) > 0
    assert limited_answer.headers["x-ratelimit-remaining"] == "0"
    # The key is limited by the grant's requests too: one account, one window.
    assert (await client.get("/api/v1/prompts", headers=limited.headers)).status_code == 429
    await app.state.runtime.usage.flush()
    async with session_factory() as session:
        mine = select(KeyAction.status).where(KeyAction.tenant_id == limited.tenant.id, KeyAction.grant_id.is_not(None))
        statuses = (await session.scalars(mine)).all()
    assert sorted(statuses) == [200, 200, 429]


@pytest.mark.fresh_app  # it lowers its app's spike threshold
async def test_request_spike_and_after_hours_on_a_grant(
    app: FastAPI,
    account: Account,
    oauth_person: Connect,
    from_address: Addressed,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    detector_of(app).limits = DetectorLimits(spike_per_minute=3, spike_factor=10)
    await away_from_minute_boundary()  # the requests below fall in one minute (and one hour)
    await _set_tenant(session_factory, account.tenant.id, working_hours=hours_around_now("Asia/Tokyo"))
    alice = await oauth_person()
    token = (await alice.tokens())["access_token"]
    for _ in range(4):  # above the floor of 3 a minute, outside the working hours (read in Tokyo)
        await _call_tool(from_address(HOME), token)
    await app.state.runtime.usage.flush()
    grant = await _grant(session_factory, account.tenant.id)
    async with session_factory() as session:
        alerts = (await session.scalars(select(Alert).where(Alert.tenant_id == account.tenant.id))).all()
    assert sorted((a.kind, a.grant_id, a.key_id) for a in alerts) == [
        ("after_hours", grant.id, None),
        ("request_spike", grant.id, None),
    ]
    [spike] = [a for a in alerts if a.kind == "request_spike"]
    assert spike.details["requests_per_minute"] == 4 and spike.owner == {
        "user_id": alice.person.user_id,
        "email": alice.person.email,
    }
