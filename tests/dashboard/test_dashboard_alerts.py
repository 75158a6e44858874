"""The Alerts page and the navigation badge (#16): the signed-in user's open and acknowledged alerts, their webhook
delivery logs, and Acknowledge (a CSRF-checked POST)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, sign_in
from vibexp.core.alerts.models import Alert, AlertKind, DeliveryState, WebhookDelivery
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope

_BADGE = re.compile(r'data-testid="open-alerts"[^>]*>(\d+)<')


def badge(html: str) -> int | None:
    match = _BADGE.search(html)
    return int(match.group(1)) if match else None


async def make_alert(
    factory: async_sessionmaker[AsyncSession], person: Person, kind: AlertKind, **fields: object
) -> str:
    async with session_scope(factory) as session:
        alert = Alert(tenant_id=person.account.tenant.id, key_id=person.account.key_id, kind=kind.value, **fields)
        session.add(alert)
        await session.flush()
        return alert.id


async def add_delivery(
    factory: async_sessionmaker[AsyncSession], person: Person, alert_id: str, **fields: object
) -> None:
    """A delivery the running app's sender leaves alone (not pending): its log is what the page shows."""
    async with session_scope(factory) as session:
        session.add(
            WebhookDelivery(
                tenant_id=person.account.tenant.id,
                alert_id=alert_id,
                url="https://hooks.example.com/vibexp",
                payload="{}",
                **fields,
            )
        )


async def test_alerts_page_badge_and_acknowledge(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    spike = await make_alert(
        session_factory, person, AlertKind.request_spike, count=7, details={"requests_per_minute": 912}
    )
    network = await make_alert(session_factory, person, AlertKind.new_network, details={"network": "198.51.100.0/24"})
    await add_delivery(
        session_factory,
        person,
        spike,
        state=DeliveryState.failed.value,
        attempts=6,
        last_status=500,
        last_error="HTTP 500",
        last_attempt_at=utcnow(),
        next_attempt_at=None,
    )
    await add_delivery(
        session_factory, person, network, state=DeliveryState.delivered.value, attempts=2, last_status=204
    )
    stranger = await make_alert(session_factory, other_person, AlertKind.after_hours, details={"local": "03:12"})

    await sign_in(client, person)
    overview = await client.get("/")
    assert badge(overview.text) == 2  # every page's navigation shows the open alerts

    page = await client.get("/alerts")
    assert page.status_code == 200
    html = page.text
    assert badge(html) == 2 and 'aria-current="page"' in html
    for expected in ("request_spike", "new_network", "requests_per_minute", "912", "198.51.100.0/24", "test key"):
        assert expected in html, expected
    assert '<td data-label="Count">7</td>' in html
    assert "failed</strong> · 6 attempts · last HTTP 500" in html and "HTTP 500</span>" in html
    assert "delivered</strong> · 2 attempts · last HTTP 204" in html
    assert stranger not in html and "03:12" not in html  # another account's alert
    assert "No webhook is configured" in html

    done = await client.post(f"/alerts/{spike}/acknowledge", data={"csrf_token": csrf_of(html)})
    assert done.status_code == 303 and done.headers["location"] == f"/alerts?acknowledged={spike}"
    after = await client.get(done.headers["location"])
    assert "Alert acknowledged." in after.text and badge(after.text) == 1
    acknowledged_part = after.text.split("<h2>Acknowledged</h2>", 1)[1]
    assert f'data-alert-id="{spike}"' in acknowledged_part and person.email in acknowledged_part
    async with session_factory() as session:
        row = await session.get_one(Alert, spike)
    assert row.status == "acknowledged" and row.acknowledged_by == person.email
    assert row.acknowledged_at is not None and utcnow() - row.acknowledged_at < timedelta(minutes=1)
    first_ack = row.acknowledged_at

    again = await client.post(f"/alerts/{spike}/acknowledge", data={"csrf_token": csrf_of(after.text)})
    assert again.status_code == 303  # already acknowledged: unchanged
    async with session_factory() as session:
        assert (await session.get_one(Alert, spike)).acknowledged_at == first_ack

    last = await client.post(f"/alerts/{network}/acknowledge", data={"csrf_token": csrf_of(after.text)})
    assert last.status_code == 303
    cleared = await client.get("/alerts")
    assert badge(cleared.text) is None and 'data-testid="no-open-alerts"' in cleared.text


async def test_acknowledge_refuses_without_csrf_and_another_accounts_alert(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    mine = await make_alert(session_factory, person, AlertKind.failed_auth)
    theirs = await make_alert(session_factory, other_person, AlertKind.failed_auth)
    await sign_in(client, person)
    page = await client.get("/alerts")

    assert (await client.post(f"/alerts/{mine}/acknowledge", data={})).status_code == 403
    assert (await client.post(f"/alerts/{mine}/acknowledge", data={"csrf_token": "forged"})).status_code == 403
    other = await client.post(f"/alerts/{theirs}/acknowledge", data={"csrf_token": csrf_of(page.text)})
    assert other.status_code == 404
    missing = await client.post("/alerts/no-such-alert/acknowledge", data={"csrf_token": csrf_of(page.text)})
    assert missing.status_code == 404
    async with session_factory() as session:
        assert (await session.get_one(Alert, mine)).status == "open"
        assert (await session.get_one(Alert, theirs)).status == "open"


async def test_alerts_page_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/alerts")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    post = await client.post("/alerts/x/acknowledge", data={"csrf_token": "x"})
    assert post.status_code == 403  # no session, so no CSRF token matches: refused before anything else
