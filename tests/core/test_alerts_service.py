"""``vibexp.core.alerts.service`` (issue #16): one open alert per key and kind, what a new one sets off in its own
transaction (audit, auto-revoke, webhook delivery), the race between two writers, and the commit-time observer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account
from vibexp.core.account import update_tenant
from vibexp.core.alerts import service as alerts
from vibexp.core.alerts.leaks import revoke_leaked
from vibexp.core.alerts.models import Alert, AlertKind, AlertStatus, WebhookDelivery
from vibexp.core.audit import service as audit
from vibexp.core.db import session_scope
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate

Factory = async_sessionmaker[AsyncSession]
SECRET = "s3cret-s3cret-s3cret"


async def _raise(factory: Factory, account: Account, kind: AlertKind, **details: object) -> Alert | None:
    async with session_scope(factory) as session:
        return await alerts.raise_alert(
            session, tenant_id=account.tenant.id, key_id=account.key_id, kind=kind, details=dict(details)
        )


async def _alerts(factory: Factory, account: Account) -> list[Alert]:
    async with factory() as session:
        return list(await session.scalars(select(Alert).where(Alert.tenant_id == account.tenant.id)))


async def _configure(factory: Factory, account: Account, **changes: object) -> None:
    async with session_scope(factory) as session:
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        await update_tenant(
            session, tenant=tenant, data=TenantUpdate.model_validate(changes), actor=TEST_ACTOR, server_urls=[]
        )


async def test_a_repeat_bumps_the_open_alert_and_after_acknowledge_a_new_one_opens(
    session_factory: Factory, account: Account
) -> None:
    first = await _raise(session_factory, account, AlertKind.request_spike, per_minute=900)
    assert first is not None and first.count == 1 and first.status == AlertStatus.open.value
    assert await _raise(session_factory, account, AlertKind.request_spike, per_minute=950) is None
    assert await _raise(session_factory, account, AlertKind.request_spike, per_minute=990) is None
    # Another kind on the same key is its own alert.
    assert await _raise(session_factory, account, AlertKind.after_hours, local_time="23:10") is not None
    rows = {row.kind: row for row in await _alerts(session_factory, account)}
    spike = rows["request_spike"]
    assert (spike.id, spike.count, spike.details) == (first.id, 3, {"per_minute": 900})  # the first details stay
    assert spike.last_seen_at >= spike.first_seen_at

    async with session_scope(session_factory) as session:
        assert await alerts.count_open(session, tenant_id=account.tenant.id) == 2
        acked = await alerts.acknowledge(session, tenant_id=account.tenant.id, alert_id=first.id, actor=TEST_ACTOR)
        assert acked.status == "acknowledged" and acked.acknowledged_by == TEST_ACTOR.name
        again = await alerts.acknowledge(session, tenant_id=account.tenant.id, alert_id=first.id, actor=TEST_ACTOR)
        assert again.acknowledged_at == acked.acknowledged_at  # idempotent
    async with session_scope(session_factory) as session:
        assert await alerts.count_open(session, tenant_id=account.tenant.id) == 1
        events = (await audit.list_events(session, tenant_id=account.tenant.id, action="alert.acknowledged")).items
    assert len(events) == 1 and events[0].target_id == first.id  # the second acknowledge recorded nothing

    reopened = await _raise(session_factory, account, AlertKind.request_spike, per_minute=1200)
    assert reopened is not None and reopened.id != first.id and reopened.count == 1


async def test_last_seen_never_goes_backwards(session_factory: Factory, account: Account) -> None:
    now = datetime.now(UTC)
    async with session_scope(session_factory) as session:
        await alerts.raise_alert(
            session, tenant_id=account.tenant.id, key_id=account.key_id, kind=AlertKind.new_network, details={}, at=now
        )
        late = now - timedelta(minutes=5)  # a batch that reached the detector late
        await alerts.raise_alert(
            session, tenant_id=account.tenant.id, key_id=account.key_id, kind=AlertKind.new_network, details={}, at=late
        )
    (alert,) = await _alerts(session_factory, account)
    assert alert.count == 2 and abs((alert.last_seen_at - now).total_seconds()) < 0.001


async def test_two_writers_raising_the_same_alert_at_once_make_one_alert_counted_twice(
    session_factory: Factory, account: Account
) -> None:
    start = asyncio.Event()

    async def writer() -> Alert | None:
        await start.wait()
        async with session_scope(session_factory) as session:
            result = await alerts.raise_alert(
                session,
                tenant_id=account.tenant.id,
                key_id=account.key_id,
                kind=AlertKind.failed_auth,
                details={"attempts": 5},
            )
            await asyncio.sleep(0.2)  # both transactions open at once: the second waits on the first's row
            return result

    tasks = [asyncio.create_task(writer()) for _ in range(2)]
    start.set()
    results = await asyncio.gather(*tasks)
    assert sorted(result is None for result in results) == [False, True]
    (alert,) = await _alerts(session_factory, account)
    assert alert.count == 2
    async with session_factory() as session:
        raised = (await audit.list_events(session, tenant_id=account.tenant.id, action="alert.raised")).items
    assert len(raised) == 1


async def test_a_new_alert_is_audited_and_queued_for_the_webhook_a_repeat_is_not(
    session_factory: Factory, account: Account
) -> None:
    await _configure(session_factory, account, alert_webhook_url="http://127.0.0.1:9/hook", alert_webhook_secret=SECRET)
    alert = await _raise(session_factory, account, AlertKind.new_network, network="198.51.100.0/24")
    assert alert is not None
    await _raise(session_factory, account, AlertKind.new_network, network="198.51.100.0/24")
    async with session_factory() as session:
        deliveries = list(await session.scalars(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id)))
        raised = (await audit.list_events(session, tenant_id=account.tenant.id, action="alert.raised")).items
    assert len(deliveries) == 1
    delivery = deliveries[0]
    assert (delivery.url, delivery.state, delivery.attempts) == ("http://127.0.0.1:9/hook", "pending", 0)
    body = json.loads(delivery.payload)
    assert body["kind"] == "new_network" and body["key_id"] == account.key_id and body["id"] == alert.id
    assert body["details"] == {"network": "198.51.100.0/24"} and body["tenant"] == account.tenant.name
    assert datetime.fromisoformat(body["at"]) == alert.first_seen_at
    assert len(raised) == 1
    event = raised[0]
    assert (event.actor_type, event.actor_name, event.target_type, event.target_id) == (
        "system",
        "alerts",
        "key",
        account.key_id,
    )
    assert event.details == {"network": "198.51.100.0/24", "kind": "new_network", "alert_id": alert.id}


async def test_without_a_webhook_nothing_is_queued(session_factory: Factory, account: Account) -> None:
    alert = await _raise(session_factory, account, AlertKind.after_hours)
    assert alert is not None
    async with session_factory() as session:
        assert list(await session.scalars(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id))) == []


async def test_auto_revoke_on_revokes_the_key_when_its_kind_opens(session_factory: Factory, account: Account) -> None:
    await _configure(
        session_factory,
        account,
        auto_revoke_on=["retired_key_used", "new_network"],
        alert_webhook_url="https://hooks.example.com/vibexp",
        alert_webhook_secret=SECRET,
    )
    assert await _raise(session_factory, account, AlertKind.request_spike) is not None  # not a chosen kind
    async with session_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.status == "active"

    alert = await _raise(session_factory, account, AlertKind.new_network, network="203.0.113.0/24")
    assert alert is not None and alert.details == {"network": "203.0.113.0/24", "auto_revoked": True}
    async with session_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.status == "revoked"
        revoked = (await audit.list_events(session, tenant_id=account.tenant.id, action="key.auto_revoked")).items
        raised = (await audit.list_events(session, tenant_id=account.tenant.id, action="alert.raised")).items
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id))
    assert len(revoked) == 1 and len(raised) == 2
    assert revoked[0].actor_name == "alerts: auto_revoke_on" and revoked[0].target_id == account.key_id
    assert revoked[0].details == {"alert_id": alert.id, "kind": "new_network"}
    assert delivery is not None and json.loads(delivery.payload)["details"]["auto_revoked"] is True

    # The key is revoked already: a chosen kind opening again revokes (and records) nothing more.
    assert await _raise(session_factory, account, AlertKind.retired_key_used) is not None
    async with session_factory() as session:
        assert (
            len((await audit.list_events(session, tenant_id=account.tenant.id, action="key.auto_revoked")).items) == 1
        )


async def test_the_observer_hears_each_new_alert_once_after_commit_and_never_a_rolled_back_one(
    session_factory: Factory, account: Account
) -> None:
    heard: list[str] = []
    alerts.observe_opened(heard.append)
    try:
        async with session_factory() as session:
            await alerts.raise_alert(
                session, tenant_id=account.tenant.id, key_id=account.key_id, kind=AlertKind.failed_auth, details={}
            )
            assert heard == []  # not committed yet
            await session.rollback()
        assert heard == []
        await _raise(session_factory, account, AlertKind.failed_auth)
        assert heard == ["failed_auth"]
        await _raise(session_factory, account, AlertKind.failed_auth)  # a repeat
        await _raise(session_factory, account, AlertKind.after_hours)
        assert heard == ["failed_auth", "after_hours"]
    finally:
        alerts.unobserve_opened(heard.append)


async def test_a_leaked_key_is_revoked_and_raises_key_leaked(session_factory: Factory, account: Account) -> None:
    await _configure(
        session_factory, account, alert_webhook_url="https://hooks.example.com/x", alert_webhook_secret=SECRET
    )
    async with session_scope(session_factory) as session:
        found = await revoke_leaked(
            session, plaintexts=[account.key], actor=TEST_ACTOR, details={"source": "vibexp scan"}
        )
    assert [key.id for key in found] == [account.key_id]
    (alert,) = await _alerts(session_factory, account)
    assert (alert.kind, alert.key_id) == ("key_leaked", account.key_id)
    assert alert.details == {"source": "vibexp scan", "reported_by": TEST_ACTOR.name}
    async with session_factory() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id))
    assert delivery is not None and json.loads(delivery.payload)["kind"] == "key_leaked"


async def test_list_filters_pages_and_tenant_scope(session_factory: Factory, account: Account) -> None:
    kinds = [AlertKind.new_network, AlertKind.request_spike, AlertKind.failed_auth, AlertKind.after_hours]
    opened = [await _raise(session_factory, account, kind) for kind in kinds]
    ids = [alert.id for alert in opened if alert is not None]
    async with session_scope(session_factory) as session:
        await alerts.acknowledge(session, tenant_id=account.tenant.id, alert_id=ids[0], actor=TEST_ACTOR)
    async with session_factory() as session:
        tenant_id = account.tenant.id
        first = await alerts.list_alerts(session, tenant_id=tenant_id, limit=3)
        assert [a.id for a in first.items] == ids[::-1][:3] and first.next_cursor
        rest = await alerts.list_alerts(session, tenant_id=tenant_id, limit=3, cursor=first.next_cursor)
        assert [a.id for a in rest.items] == [ids[0]] and rest.next_cursor is None
        assert [a.id for a in (await alerts.list_alerts(session, tenant_id=tenant_id, status="open")).items] == ids[
            :0:-1
        ]
        assert [a.id for a in (await alerts.list_alerts(session, tenant_id=tenant_id, kind="failed_auth")).items] == [
            ids[2]
        ]
        assert len((await alerts.list_alerts(session, tenant_id=tenant_id, key_id=account.key_id)).items) == 4
        assert (await alerts.list_alerts(session, tenant_id=tenant_id, key_id="nope")).items == []
        assert (await alerts.list_alerts(session, tenant_id="another-tenant")).items == []
        with pytest.raises(InvalidInput, match="unknown alert kind 'bogus'"):
            await alerts.list_alerts(session, tenant_id=tenant_id, kind="bogus")
        with pytest.raises(InvalidInput, match="unknown alert status"):
            await alerts.list_alerts(session, tenant_id=tenant_id, status="closed")
        with pytest.raises(NotFound):
            await alerts.acknowledge(session, tenant_id="another-tenant", alert_id=ids[1], actor=TEST_ACTOR)
        with pytest.raises(NotFound):
            await alerts.acknowledge(session, tenant_id=tenant_id, alert_id="not-an-id", actor=TEST_ACTOR)


async def test_an_unknown_kind_is_refused(session_factory: Factory, account: Account) -> None:
    made_up: Any = "made_up"  # what a caller without type checking could pass
    async with session_factory() as session:
        with pytest.raises(InvalidInput, match="unknown alert kind"):
            await alerts.raise_alert(
                session, tenant_id=account.tenant.id, key_id=account.key_id, kind=made_up, details={}
            )
