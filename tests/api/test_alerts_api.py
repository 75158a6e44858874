"""Alerts over REST (issue #16): ``GET /api/v1/alerts`` (filters, cursor pages, newest first, 422 for an unknown
kind), ``POST /api/v1/alerts/{id}/acknowledge`` (idempotent, 404 for another tenant's), ``vibexp_alerts_total`` on
``/metrics``, and a leak report that raises ``key_leaked`` and queues its webhook delivery."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account
from vibexp.core.account import update_tenant
from vibexp.core.alerts import service as alerts
from vibexp.core.alerts.models import AlertKind, WebhookDelivery
from vibexp.core.audit import service as audit
from vibexp.core.db import session_scope
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate

Factory = async_sessionmaker[AsyncSession]
URL = "/api/v1/alerts"


async def _raise(factory: Factory, account: Account, kind: AlertKind) -> str | None:
    async with session_scope(factory) as session:
        alert = await alerts.raise_alert(
            session, tenant_id=account.tenant.id, key_id=account.key_id, kind=kind, details={"seen": kind.value}
        )
        return alert.id if alert else None


async def test_list_filter_page_and_acknowledge(
    client: httpx.AsyncClient, session_factory: Factory, account: Account
) -> None:
    kinds = [AlertKind.new_network, AlertKind.request_spike, AlertKind.failed_auth]
    ids = [await _raise(session_factory, account, kind) for kind in kinds]
    await _raise(session_factory, account, AlertKind.request_spike)  # a repeat: count 2

    listed = await client.get(URL, headers=account.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [item["id"] for item in body["items"]] == ids[::-1] and body["next_cursor"] is None
    spike = body["items"][1]
    assert (spike["kind"], spike["key_id"], spike["status"], spike["count"]) == (
        "request_spike",
        account.key_id,
        "open",
        2,
    )
    assert spike["details"] == {"seen": "request_spike"} and spike["acknowledged_at"] is None

    page = await client.get(URL, params={"limit": 2}, headers=account.headers)
    assert [item["id"] for item in page.json()["items"]] == ids[:0:-1]
    rest = await client.get(URL, params={"limit": 2, "cursor": page.json()["next_cursor"]}, headers=account.headers)
    assert [item["id"] for item in rest.json()["items"]] == ids[:1] and rest.json()["next_cursor"] is None

    by_kind = await client.get(URL, params={"kind": "failed_auth"}, headers=account.headers)
    assert [item["id"] for item in by_kind.json()["items"]] == [ids[2]]
    by_key = await client.get(URL, params={"key_id": account.key_id}, headers=account.headers)
    assert len(by_key.json()["items"]) == 3
    assert (await client.get(URL, params={"key_id": "other"}, headers=account.headers)).json()["items"] == []

    acked = await client.post(f"{URL}/{ids[1]}/acknowledge", headers=account.headers)
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_by"].startswith("test key (vib_")
    again = await client.post(f"{URL}/{ids[1]}/acknowledge", headers=account.headers)
    assert again.status_code == 200 and again.json()["acknowledged_at"] == acked.json()["acknowledged_at"]
    open_ = await client.get(URL, params={"status": "open"}, headers=account.headers)
    assert [item["id"] for item in open_.json()["items"]] == [ids[2], ids[0]]
    done = await client.get(URL, params={"status": "acknowledged"}, headers=account.headers)
    assert [item["id"] for item in done.json()["items"]] == [ids[1]]
    async with session_factory() as session:
        events = (await audit.list_events(session, tenant_id=account.tenant.id, action="alert.acknowledged")).items
    assert len(events) == 1 and (events[0].actor_type, events[0].actor_id) == ("api_key", account.key_id)

    # Acknowledged: the next spike opens a new alert.
    assert await _raise(session_factory, account, AlertKind.request_spike) not in (None, ids[1])


async def test_another_tenants_alert_is_not_found(
    client: httpx.AsyncClient, session_factory: Factory, account: Account, other_account: Account
) -> None:
    alert_id = await _raise(session_factory, account, AlertKind.after_hours)
    response = await client.post(f"{URL}/{alert_id}/acknowledge", headers=other_account.headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (await client.get(URL, headers=other_account.headers)).json()["items"] == []
    missing = await client.post(f"{URL}/0190a1b2-0000-7000-8000-000000000000/acknowledge", headers=account.headers)
    assert missing.status_code == 404
    garbage = await client.post(f"{URL}/not-an-id/acknowledge", headers=account.headers)
    assert garbage.status_code == 404
    async with session_factory() as session:
        page = await alerts.list_alerts(session, tenant_id=account.tenant.id)
    assert page.items[0].status == "open"  # untouched


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"kind": "bogus"}, id="unknown-kind"),
        pytest.param({"status": "closed"}, id="unknown-status"),
        pytest.param({"limit": "0"}, id="limit-0"),
        pytest.param({"limit": "201"}, id="limit-too-big"),
        pytest.param({"cursor": "!!!"}, id="garbage-cursor"),
    ],
)
async def test_bad_list_parameters_are_422(client: httpx.AsyncClient, account: Account, params: dict[str, str]) -> None:
    response = await client.get(URL, params=params, headers=account.headers)
    assert response.status_code == 422, response.text
    assert set(response.json()["error"]) >= {"code", "message"}


async def test_alerts_need_a_key(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.post(f"{URL}/x/acknowledge")).status_code == 401


def _alerts_total(text: str, kind: str) -> float:
    match = re.search(rf'^vibexp_alerts_total{{kind="{kind}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"no vibexp_alerts_total for {kind}"
    return float(match.group(1))


async def test_the_prometheus_counter_counts_each_new_alert_once(
    client: httpx.AsyncClient, session_factory: Factory, account: Account
) -> None:
    before = (await client.get("/metrics")).text
    assert _alerts_total(before, "retired_key_used") >= 0 and _alerts_total(before, "key_leaked") >= 0
    await _raise(session_factory, account, AlertKind.retired_key_used)
    await _raise(session_factory, account, AlertKind.retired_key_used)  # a repeat
    async with session_factory() as session:  # opened, then rolled back: not counted
        await alerts.raise_alert(
            session, tenant_id=account.tenant.id, key_id=account.key_id, kind=AlertKind.after_hours, details={}
        )
        await session.rollback()
    after = (await client.get("/metrics")).text
    assert _alerts_total(after, "retired_key_used") - _alerts_total(before, "retired_key_used") == 1
    assert _alerts_total(after, "after_hours") == _alerts_total(before, "after_hours")


async def test_a_leak_report_raises_key_leaked_and_queues_the_webhook(
    app: FastAPI, client: httpx.AsyncClient, session_factory: Factory, account: Account
) -> None:
    async with session_scope(session_factory) as session:
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        update = TenantUpdate(alert_webhook_url="https://hooks.example.com/v", alert_webhook_secret="s" * 32)
        await update_tenant(session, tenant=tenant, data=update, actor=TEST_ACTOR, server_urls=[])
    before = _alerts_total((await client.get("/metrics")).text, "key_leaked")
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as scanner:
        report = [{"token": account.key, "url": "https://gist.example/1", "source": "ci"}]
        assert (await scanner.post("/api/v1/leaked-keys", json=report)).status_code == 202
    assert (await client.get(URL, headers=account.headers)).status_code == 401  # the key is revoked

    async with session_factory() as session:
        page = await alerts.list_alerts(session, tenant_id=account.tenant.id)
        (alert,) = page.items
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id))
        raised = (await audit.list_events(session, tenant_id=account.tenant.id, action="alert.raised")).items
    assert (alert.kind, alert.key_id, alert.status) == ("key_leaked", account.key_id, "open")
    assert alert.details == {
        "url": "https://gist.example/1",
        "source": "ci",
        "reported_by": "leaked-key report",
        "client_ip": "198.51.100.20",
    }
    assert delivery is not None and delivery.url == "https://hooks.example.com/v"
    payload = json.loads(delivery.payload)
    assert (payload["kind"], payload["key_id"], payload["details"]["url"]) == (
        "key_leaked",
        account.key_id,
        "https://gist.example/1",
    )
    assert account.key not in delivery.payload and len(raised) == 1
    assert _alerts_total((await client.get("/metrics")).text, "key_leaked") - before == 1
