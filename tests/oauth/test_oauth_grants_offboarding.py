"""Offboarding (SQLite and PostgreSQL): removing a member revokes every connected app (OAuth grant) of theirs in the
same transaction as the membership's delete, each audited ``oauth.revoked`` with ``reason: member_removed``; the
CLI says how many; a live token is refused on another ``vibexp serve`` replica within 1 s."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account
from helpers.servers import LiveServer
from integration.test_cli import vibexp
from oauth.flow import Connect, Flow, new_flow, person_flow
from vibexp.core.access import Caller, Role
from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import session_scope
from vibexp.core.members import usecases as members
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.tenants.models import Tenant
from vibexp.core.users.models import Membership

LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _mcp(http: httpx.AsyncClient, url: str, token: str) -> int:
    answer = await http.post(url, json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})
    return answer.status_code


async def _grants(factory: async_sessionmaker[AsyncSession], user_id: str) -> list[OAuthGrant]:
    async with factory() as db:
        return list(await db.scalars(select(OAuthGrant).where(OAuthGrant.user_id == user_id).order_by(OAuthGrant.id)))


async def _events(factory: async_sessionmaker[AsyncSession], tenant_id: str, action: str) -> list[AuditEvent]:
    async with factory() as db:
        query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.action == action)
        return list(await db.scalars(query.order_by(AuditEvent.id)))


@pytest.fixture
async def alice(client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]) -> Flow:
    """A member of the test's account, signed in on ``client``."""
    return await person_flow(client, session_factory, tenant_id=account.tenant.id, role=Role.member)


async def test_removing_a_member_revokes_their_grants_and_audits_each(
    client: httpx.AsyncClient, account: Account, alice: Flow, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    laptop = await alice.tokens()
    desktop = await alice.tokens()
    gone = await alice.tokens()
    [first, second, third] = await _grants(session_factory, alice.person.user_id)
    assert (
        await alice.http.delete(f"/api/v1/oauth/grants/{third.id}", headers=alice.person.headers)
    ).status_code == 204
    assert await _mcp(client, "/mcp/v1/connect", laptop["access_token"]) == 200

    removed = await client.delete(f"/api/v1/members/{alice.person.user_id}", headers=account.headers)
    assert removed.status_code == 204, removed.text
    for tokens in (laptop, desktop, gone):
        assert await _mcp(client, "/mcp/v1/connect", tokens["access_token"]) == 401
    grants = await _grants(session_factory, alice.person.user_id)
    assert [(g.id, g.revoked_reason) for g in grants] == [
        (first.id, "member_removed"),
        (second.id, "member_removed"),
        (third.id, "revoked"),  # revoked before: not revoked (nor audited) again
    ]
    assert all(g.revoked_at is not None and g.access_hash is None and g.refresh_hash is None for g in grants)
    revocations = await _events(session_factory, account.tenant.id, "oauth.revoked")
    assert [(e.target_id, e.details["reason"]) for e in revocations] == [
        (third.id, "revoked"),
        (first.id, "member_removed"),
        (second.id, "member_removed"),
    ]
    assert {e.actor_id for e in revocations[1:]} == {account.key_id}  # who removed her
    [event] = await _events(session_factory, account.tenant.id, "member.removed")
    assert event.details["revoked_grants"] == [first.id, second.id]
    assert event.details["revoked_keys"] == [alice.person.key_id]
    assert (await alice.refresh(desktop["refresh_token"])).json()["error"] == "invalid_grant"


async def test_the_grants_go_in_the_membership_deletes_transaction(
    client: httpx.AsyncClient, account: Account, alice: Flow, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tokens = await alice.tokens()
    caller = Caller.cli(account.tenant.id)

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned):
        async with session_scope(session_factory, write=True) as db:
            removal = await members.remove(db, caller=caller, user_id=alice.person.user_id)
            assert len(removal.revoked_grants) == 1
            raise Abandoned  # the unit of work rolls back: the membership and the grant both stay
    [grant] = await _grants(session_factory, alice.person.user_id)
    assert grant.revoked_at is None
    assert await _mcp(client, "/mcp/v1/connect", tokens["access_token"]) == 200

    async with session_scope(session_factory, write=True) as db:
        removal = await members.remove(db, caller=caller, user_id=alice.person.user_id)
    assert removal.revoked_grants == [grant.id] and removal.revoked_keys == [alice.person.key_id]
    async with session_factory() as db:
        membership = await db.scalar(
            select(Membership).where(
                Membership.tenant_id == account.tenant.id, Membership.user_id == alice.person.user_id
            )
        )
    [grant] = await _grants(session_factory, alice.person.user_id)
    assert membership is None and grant.revoked_at is not None
    assert await _mcp(client, "/mcp/v1/connect", tokens["access_token"]) == 401


async def test_another_members_grants_stay(
    client: httpx.AsyncClient,
    account: Account,
    alice: Flow,
    oauth_person: Connect,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    mine = await alice.tokens()
    bob = await oauth_person(Role.member, client_id=alice.client_id)
    his = await bob.tokens()
    removed = await client.delete(f"/api/v1/members/{alice.person.user_id}", headers=account.headers)
    assert removed.status_code == 204
    assert await _mcp(bob.http, "/mcp/v1/connect", his["access_token"]) == 200
    assert await _mcp(client, "/mcp/v1/connect", mine["access_token"]) == 401
    [grant] = await _grants(session_factory, bob.person.user_id)
    assert grant.revoked_at is None


async def test_cli_removal_counts_the_apps_and_the_other_replica_refuses_within_a_second(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
        flow = await new_flow(http, db_factory, base=first.url)
        tokens = await flow.tokens()
        other = f"{second.url}/mcp/v1/connect"
        assert await _mcp(http, other, tokens["access_token"]) == 200  # verified and cached there
        async with db_factory() as db:
            tenant = await db.get(Tenant, flow.tenant_id)
        assert tenant is not None
        # The CLI is a third process: no in-process notice reaches the servers, only their change poll.
        removed = await asyncio.to_thread(
            vibexp, database_url, "member", "remove", "--tenant", tenant.name, "--email", flow.person.email
        )
        started = time.monotonic()
        assert removed.returncode == 0, removed.stderr
        assert "revoked 1 personal key(s) and 1 connected app(s)" in removed.stderr, removed.stderr
        assert tokens["access_token"] not in removed.stderr + removed.stdout
        while await _mcp(http, other, tokens["access_token"]) == 200:
            assert time.monotonic() - started < 1.0, "the other replica still accepts the removed member's token"
            await asyncio.sleep(0.05)
        assert await _mcp(http, other, tokens["access_token"]) == 401
        assert await _mcp(http, f"{first.url}/mcp/v1/connect", tokens["access_token"]) == 401
