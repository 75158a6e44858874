"""The tenant key policy's sweep (``vibexp.core.keys.policy``): keys unused past ``revoke_unused_after_days`` are
revoked once, audited once and refused at once; recent keys, buffered uses and tenants without a policy are left
alone; an expired key is audited (``key.expired``) once; two replicas racing revoke and record each key exactly
once; the task runs with the server; migration 0012 marks keys that expired before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.apps import running
from helpers.factories import TEST_ACTOR, Account, make_account
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core import notices
from vibexp.core.account import update_tenant
from vibexp.core.audit import service as audit
from vibexp.core.audit.models import AuditEvent
from vibexp.core.clock import utcnow
from vibexp.core.config import Settings
from vibexp.core.db import Database, UTCDateTime, create_engine, session_scope
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.policy import KeyPolicySweep, record_expired_keys, revoke_unused_keys
from vibexp.core.migrate import upgrade_async
from vibexp.core.runtime import Runtime
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate
from vibexp.core.traffic import UsageEvent

Factory = async_sessionmaker[AsyncSession]
TENANT = "00000000-0000-4000-8000-0000000000e1"
KEY_ID_STEM = "00000000-0000-4000-8000-00000000e00"


async def _set_policy(factory: Factory, tenant_id: str, days: int | None) -> None:
    async with session_scope(factory) as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        data = TenantUpdate.model_validate({"revoke_unused_after_days": days})
        await update_tenant(session, tenant=tenant, data=data, actor=TEST_ACTOR, server_urls=[])


async def _new_key(factory: Factory, tenant_id: str, name: str) -> str:
    async with session_scope(factory) as session:
        new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant_id, name=name, source="cli")
    return new.record.id


async def _age(factory: Factory, key_id: str, *, created_days: float, used_days: float | None) -> None:
    """Pretend the key was made ``created_days`` ago and last used ``used_days`` ago (``None``: never)."""
    now = utcnow()
    last_used = now - timedelta(days=used_days) if used_days is not None else None
    async with session_scope(factory) as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(created_at=now - timedelta(days=created_days), last_used_at=last_used)
        )


async def _expire(factory: Factory, key_id: str, *, days_ago: float) -> None:
    async with session_scope(factory) as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == key_id).values(expires_at=utcnow() - timedelta(days=days_ago))
        )


async def _expired_events(factory: Factory, tenant_id: str) -> list[AuditEvent]:
    async with factory() as session:
        return (await audit.list_events(session, tenant_id=tenant_id, action="key.expired")).items


async def _key(factory: Factory, key_id: str) -> ApiKey:
    async with factory() as session:
        key = await session.get(ApiKey, key_id)
    assert key is not None
    return key


async def _auto_revoked(factory: Factory, tenant_id: str) -> list[AuditEvent]:
    async with factory() as session:
        return (await audit.list_events(session, tenant_id=tenant_id, action="key.auto_revoked")).items


def _runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def test_keys_unused_past_the_policy_are_revoked_once_audited_and_refused_at_once(
    app: FastAPI, client: httpx.AsyncClient, session_factory: Factory, account: Account
) -> None:
    runtime = _runtime(app)
    tenant_id = account.tenant.id
    # The account's key is used (and so cached by the verifier), then its last use is 40 days in the past.
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200
    await runtime.usage.flush()
    await _age(session_factory, account.key_id, created_days=100, used_days=40)
    never_used = await _new_key(session_factory, tenant_id, "never used")
    await _age(session_factory, never_used, created_days=31, used_days=None)
    recent = await _new_key(session_factory, tenant_id, "used yesterday")
    await _age(session_factory, recent, created_days=400, used_days=1)
    young = await _new_key(session_factory, tenant_id, "made last week")
    await _age(session_factory, young, created_days=7, used_days=None)
    await _set_policy(session_factory, tenant_id, 30)

    told: set[str] = set()

    def listener(key_ids: list[str]) -> None:
        told.update(key_ids)

    notices.listen(notices.Notice.KEY_CHANGED, listener)  # what every verifier of this process listens to, at commit
    try:
        await runtime.key_policy.sweep()
    finally:
        notices.unlisten(notices.Notice.KEY_CHANGED, listener)
    # This request comes straight after the commit; the cached key is refused at once.
    refused = await client.get("/api/v1/prompts", headers=account.headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    assert told == {account.key_id, never_used}

    for key_id in (account.key_id, never_used):
        key = await _key(session_factory, key_id)
        assert key.status == KeyStatus.revoked.value and key.revoked_at is not None
    for key_id in (recent, young):
        assert (await _key(session_factory, key_id)).status == KeyStatus.active.value
    events = await _auto_revoked(session_factory, tenant_id)
    assert sorted(e.target_id or "" for e in events) == sorted([account.key_id, never_used])
    by_key = {e.target_id: e for e in events}
    used = by_key[account.key_id]
    assert used.actor_type == "system" and used.actor_name == "key policy"
    assert used.details["reason"] == "unused" and used.details["days"] == 30
    last_used_at = datetime.fromisoformat(used.details["last_used_at"])
    assert timedelta(days=39) < utcnow() - last_used_at < timedelta(days=41)
    assert by_key[never_used].details == {"reason": "unused", "days": 30, "last_used_at": None}
    assert by_key[never_used].target_name == "never used"

    # Another pass finds nothing more to do and records nothing more.
    assert await runtime.key_policy.sweep() == []
    assert len(await _auto_revoked(session_factory, tenant_id)) == 2


async def test_a_tenant_without_a_policy_keeps_its_old_keys(
    app: FastAPI, session_factory: Factory, account: Account
) -> None:
    await _age(session_factory, account.key_id, created_days=900, used_days=800)
    other = await make_account(session_factory)
    await _age(session_factory, other.key_id, created_days=900, used_days=None)
    await _set_policy(session_factory, other.tenant.id, 3650)  # a policy longer than the key's age

    await _runtime(app).key_policy.sweep()

    assert (await _key(session_factory, account.key_id)).status == KeyStatus.active.value
    assert (await _key(session_factory, other.key_id)).status == KeyStatus.active.value
    assert await _auto_revoked(session_factory, account.tenant.id) == []

    await _set_policy(session_factory, other.tenant.id, 365)  # the same key, now past a shorter policy
    await _runtime(app).key_policy.sweep()
    assert (await _key(session_factory, other.key_id)).status == KeyStatus.revoked.value


async def test_a_suspended_key_is_left_to_whoever_suspended_it(
    app: FastAPI, session_factory: Factory, account: Account
) -> None:
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None
        await keys.suspend_key(session, key=key, actor=TEST_ACTOR)
    await _age(session_factory, account.key_id, created_days=90, used_days=60)
    await _set_policy(session_factory, account.tenant.id, 30)
    await _runtime(app).key_policy.sweep()
    assert (await _key(session_factory, account.key_id)).status == KeyStatus.suspended.value


async def test_a_use_still_in_the_usage_buffer_keeps_the_key(
    app: FastAPI, session_factory: Factory, account: Account
) -> None:
    """The sweep flushes this process's buffered usage before it looks at ``last_used_at``."""
    runtime = _runtime(app)
    await runtime.usage.flush()
    await _age(session_factory, account.key_id, created_days=90, used_days=45)
    await _set_policy(session_factory, account.tenant.id, 30)
    runtime.usage.record(
        UsageEvent(
            key_id=account.key_id,
            tenant_id=account.tenant.id,
            at=utcnow(),
            method="GET",
            route="/api/v1/prompts",
            action="prompts.list",
            status=200,
            tool_type="curl",
            client_ip="127.0.0.1",
        )
    )
    assert runtime.usage.pending == 1  # no await since record(): the background flush cannot have taken it

    assert await runtime.key_policy.sweep() == []

    key = await _key(session_factory, account.key_id)
    assert key.status == KeyStatus.active.value
    assert key.last_used_at is not None and utcnow() - key.last_used_at < timedelta(minutes=1)


async def test_an_expired_key_is_audited_once_and_a_revoked_or_unexpired_one_never(
    app: FastAPI, session_factory: Factory, account: Account
) -> None:
    runtime = _runtime(app)
    await _expire(session_factory, account.key_id, days_ago=0.001)
    revoked = await _new_key(session_factory, account.tenant.id, "revoked, then expired")
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, revoked)
        assert key is not None
        await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
    await _expire(session_factory, revoked, days_ago=1)
    later = await _new_key(session_factory, account.tenant.id, "expires tomorrow")
    await _expire(session_factory, later, days_ago=-1)

    await runtime.key_policy.sweep()
    await runtime.key_policy.sweep()

    (event,) = await _expired_events(session_factory, account.tenant.id)
    key = await _key(session_factory, account.key_id)
    assert event.target_id == account.key_id and event.target_name == "test key"
    assert event.actor_type == "system" and event.actor_name == "key expiry"
    assert key.expires_at is not None and datetime.fromisoformat(event.details["expires_at"]) == key.expires_at
    assert key.expiry_recorded_at is not None and key.status == KeyStatus.active.value  # refused by its expiry
    assert (await _key(session_factory, later)).expiry_recorded_at is None


async def test_the_upgrade_counts_keys_expired_before_it_as_recorded(empty_database_url: str) -> None:
    """Migration 0012: a key that expired before the upgrade gets no late ``key.expired``; a later one will."""
    url = empty_database_url
    engine = create_engine(url)
    try:
        await upgrade_async(url, "0011_key_permissions")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at)"
                    " VALUES (:t, 'old', 'Old', 'free', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"t": TENANT},
            )
            insert_key = text(
                "INSERT INTO api_keys (id, tenant_id, name, description, prefix, key_hash, status, source,"
                " created_at, updated_at, expires_at, request_count)"
                " VALUES (:id, :t, :name, '', 'vib_0000', :hash, 'active', 'cli',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :expires, 0)"
            ).bindparams(bindparam("expires", type_=UTCDateTime()))
            moments = {"expired": datetime(2020, 1, 1, tzinfo=UTC), "ahead": datetime(2999, 1, 1, tzinfo=UTC)}
            for number, name in enumerate(("expired", "ahead", "never")):
                await conn.execute(
                    insert_key,
                    {
                        "id": f"{KEY_ID_STEM}{number}",
                        "t": TENANT,
                        "name": name,
                        "hash": f"{number:064}",
                        "expires": moments.get(name),
                    },
                )
        await upgrade_async(url)
        async with engine.connect() as conn:
            rows = dict((await conn.execute(text("SELECT name, expiry_recorded_at FROM api_keys"))).all())
    finally:
        await engine.dispose()
    assert rows["expired"] is not None
    assert rows["ahead"] is None
    assert rows["never"] is None


async def test_two_replicas_sweeping_at_once_revoke_each_key_once(database_url: str) -> None:
    # Two engines on one database: two PostgreSQL replicas, or two worker processes on one SQLite file.
    replicas = [Database.from_settings(Settings(database_url=database_url)) for _ in range(2)]
    try:
        factory = replicas[0].session_factory
        account = await make_account(factory)
        key_ids = {account.key_id}
        for number in range(4):
            key_ids.add(await _new_key(factory, account.tenant.id, f"old key {number}"))
        for key_id in key_ids:
            await _age(factory, key_id, created_days=60, used_days=None)
        expired = await _new_key(factory, account.tenant.id, "expired yesterday")
        await _age(factory, expired, created_days=60, used_days=1)
        await _expire(factory, expired, days_ago=1)
        await _set_policy(factory, account.tenant.id, 30)
        start = asyncio.Event()

        async def replica(database: Database) -> set[str]:
            async with session_scope(database.session_factory) as session:
                await start.wait()
                await record_expired_keys(session)
                revoked = await revoke_unused_keys(session)
                await asyncio.sleep(0.3)  # both transactions open at once: the other waits on these rows
            return {key.key_id for key in revoked}

        tasks = [asyncio.create_task(replica(database)) for database in replicas]
        start.set()
        first, second = await asyncio.gather(*tasks)

        assert first | second == key_ids
        assert not first & second
        events = await _auto_revoked(factory, account.tenant.id)
        assert sorted(e.target_id or "" for e in events) == sorted(key_ids)
        async with factory() as session:
            statuses = set(await session.scalars(select(ApiKey.status).where(ApiKey.tenant_id == account.tenant.id)))
        assert statuses == {KeyStatus.revoked.value, KeyStatus.active.value}  # the expired key was used yesterday
        assert [e.target_id for e in await _expired_events(factory, account.tenant.id)] == [expired]

        # Whole sweeps, one per replica, at once: nothing left, nothing recorded twice.
        assert await asyncio.gather(*(KeyPolicySweep(database).sweep() for database in replicas)) == [[], []]
        assert len(await _auto_revoked(factory, account.tenant.id)) == len(key_ids)
        assert len(await _expired_events(factory, account.tenant.id)) == 1
    finally:
        for database in replicas:
            await database.dispose()


async def test_the_sweep_runs_with_the_server_and_stops_with_it(settings: ApiSettings) -> None:
    """A server sweeping every 50 ms revokes on its own, and its sweep stops when the server stops."""
    async with running(create_app(settings.model_copy(update={"key_policy_interval": 0.05}))) as app:
        runtime = _runtime(app)
        factory = runtime.session_factory
        assert runtime.key_policy.running
        account = await make_account(factory)
        await _age(factory, account.key_id, created_days=10, used_days=None)
        await _set_policy(factory, account.tenant.id, 5)

        deadline = asyncio.get_running_loop().time() + 10
        while (await _key(factory, account.key_id)).status != KeyStatus.revoked.value:
            assert asyncio.get_running_loop().time() < deadline, "the background sweep never revoked the key"
            await asyncio.sleep(0.05)
        assert len(await _auto_revoked(factory, account.tenant.id)) == 1

    for _ in range(200):
        if not runtime.key_policy.running:
            break
        await asyncio.sleep(0.01)
    assert not runtime.key_policy.running


@pytest.mark.parametrize("interval", [0, -1, 3601])
def test_a_bad_sweep_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValidationError, match="key_policy_interval"):
        Settings(key_policy_interval=interval)
