"""The Alerts page and the navigation badge (#16): the signed-in user's open and acknowledged alerts, their webhook
delivery logs, and Acknowledge (a CSRF-checked POST)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, sign_in
from helpers.factories import TEST_ACTOR
from vibexp.api.dashboard.alert_kinds import ALERT_KINDS, Severity, describe, summary
from vibexp.core.alerts.models import Alert, AlertKind, DeliveryState, WebhookDelivery
from vibexp.core.audit.models import AuditEvent
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys

_BADGE = re.compile(r'data-testid="open-alerts"[^>]*>(\d+)<')


def badge(html: str) -> int | None:
    match = _BADGE.search(html)
    return int(match.group(1)) if match else None


async def make_alert(
    factory: async_sessionmaker[AsyncSession], person: Person, kind: AlertKind, **fields: object
) -> str:
    async with session_scope(factory) as session:
        fields.setdefault("key_id", person.account.key_id)
        alert = Alert(tenant_id=person.account.tenant.id, kind=kind.value, **fields)
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
    for expected in (
        "Spike of requests",  # human labels, not kind codes
        "Used from a new network",
        "912 requests a minute",  # the one-line summary
        "Used from network 198.51.100.0/24, new for this key",
        "requests_per_minute",  # the raw details, folded
        "test key",
    ):
        assert expected in html, expected
    assert ">request_spike<" not in html and ">new_network<" not in html
    assert '<td data-label="Count" class="num">7</td>' in html
    assert 'data-testid="delivery-state">Failed<' in html and 'data-testid="delivery-state">Delivered<' in html
    assert "failed</strong> · 6 attempts · last HTTP 500" in html and "HTTP 500</span>" in html
    assert "delivered</strong> · 2 attempts · last HTTP 204" in html
    assert html.count('<details class="delivery-log"') == 2  # the logs are folded
    # Worst first; both are medium, so by label ("Spike ..." before "Used ..."); each group shows its severity.
    assert html.index('data-kind="request_spike"') < html.index('data-kind="new_network"')
    assert html.count('data-testid="severity">Medium<') == 2
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


def test_every_alert_kind_has_a_label_a_severity_and_a_summary() -> None:
    assert set(ALERT_KINDS) == set(AlertKind)
    labels = [info.label for info in ALERT_KINDS.values()]
    assert len(set(labels)) == len(labels) and not any("_" in label for label in labels)
    for kind, info in ALERT_KINDS.items():
        assert info.summarise({}), kind  # an old alert without details still reads as a sentence
        assert "None" not in info.summarise({}), kind


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        (
            AlertKind.new_network,
            {"network": "198.51.100.0/24", "client_ip": "198.51.100.7", "lookback_days": 30},
            "Used from network 198.51.100.0/24 in the last 30 days, new for this key (address 198.51.100.7)",
        ),
        (
            AlertKind.request_spike,
            {"requests_per_minute": 912, "average_per_minute": 3.5},
            "912 requests a minute, against a usual 3.5",
        ),
        (
            AlertKind.failed_auth,
            {"attempts": 5, "client_ips": ["203.0.113.1", "203.0.113.2"]},
            "5 refused keys that share this key's prefix from 203.0.113.1, 203.0.113.2: someone may be guessing",
        ),
        (
            AlertKind.retired_key_used,
            {"reason": "revoked", "client_ip": "203.0.113.9", "attempts": 2},
            "The key was presented after it was revoked from 203.0.113.9",
        ),
        (
            AlertKind.disallowed_address,
            {"client_ips": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]},
            "The key was presented from 192.0.2.1, 192.0.2.2, 192.0.2.3 and 1 more, outside its allowed addresses",
        ),
        (
            AlertKind.after_hours,
            {"local_time": "2026-12-06T03:12+01:00", "working_hours": "Mon-Fri 08-18"},
            "Used at 2026-12-06T03:12+01:00, outside working hours (working hours: Mon-Fri 08-18)",
        ),
        (
            AlertKind.key_leaked,
            {"url": "https://github.com/x/y", "reported_by": "github"},
            "Reported as leaked in https://github.com/x/y by github; the key was revoked",
        ),
        (
            AlertKind.new_network,
            {"network": "198.51.100.0/24", "auto_revoked": True},
            "Used from network 198.51.100.0/24, new for this key; the key was revoked automatically",
        ),
    ],
)
def test_one_line_summaries(kind: AlertKind, details: dict[str, object], expected: str) -> None:
    assert summary(Alert(kind=kind.value, details=details)) == expected


def test_severity_and_an_unknown_kind() -> None:
    assert ALERT_KINDS[AlertKind.retired_key_used].severity is Severity.high
    assert ALERT_KINDS[AlertKind.failed_auth].severity is Severity.low  # anyone who saw the prefix can raise it
    assert describe("from_a_newer_server").label == "From a newer server"


async def _key(factory: async_sessionmaker[AsyncSession], person: Person, name: str, *, revoked: bool = False) -> str:
    async with session_scope(factory) as session:
        new = await keys.create_key(
            session, actor=TEST_ACTOR, tenant_id=person.account.tenant.id, name=name, source="cli"
        )
        if revoked:
            await keys.revoke_key(session, key=new.record, actor=TEST_ACTOR)
        return new.record.id


async def test_acknowledge_all_of_a_kind_then_all(
    client: httpx.AsyncClient, person: Person, other_person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    second = await _key(session_factory, person, "second key")
    failed = [
        await make_alert(session_factory, person, AlertKind.failed_auth),
        await make_alert(session_factory, person, AlertKind.failed_auth, key_id=second),
    ]
    network = await make_alert(session_factory, person, AlertKind.new_network, details={"network": "192.0.2.0/24"})
    theirs = await make_alert(session_factory, other_person, AlertKind.failed_auth)
    await sign_in(client, person)
    page = (await client.get("/alerts")).text
    assert 'data-testid="acknowledge-all">Acknowledge all 3<' in page
    assert 'name="kind" value="failed_auth"' in page  # two of a kind: a button for the kind
    assert 'name="kind" value="new_network"' not in page  # one: its own button is enough
    token = csrf_of(page)

    done = await client.post("/alerts/acknowledge", data={"csrf_token": token, "kind": "failed_auth"})
    assert done.status_code == 303 and done.headers["location"] == "/alerts?count=2"
    after = await client.get(done.headers["location"])
    assert "2 alerts acknowledged." in after.text and badge(after.text) == 1
    async with session_factory() as session:
        states = {i: (await session.get_one(Alert, i)).status for i in [*failed, network, theirs]}
    assert states == {failed[0]: "acknowledged", failed[1]: "acknowledged", network: "open", theirs: "open"}
    async with session_factory() as session:
        trail = await session.scalars(
            select(AuditEvent.target_id).where(
                AuditEvent.tenant_id == person.account.tenant.id, AuditEvent.action == "alert.acknowledged"
            )
        )
        assert set(trail) == set(failed)  # each one audited

    bad = await client.post("/alerts/acknowledge", data={"csrf_token": token, "kind": "no_such_kind"})
    assert bad.status_code == 422 and "unknown alert kind" in bad.text
    assert (await client.post("/alerts/acknowledge", data={})).status_code == 403

    everything = await client.post("/alerts/acknowledge", data={"csrf_token": token})
    assert everything.headers["location"] == "/alerts?count=1"
    cleared = await client.get(everything.headers["location"])
    assert "1 alert acknowledged." in cleared.text and badge(cleared.text) is None
    nothing = await client.post("/alerts/acknowledge", data={"csrf_token": token})
    assert nothing.headers["location"] == "/alerts?count=0"
    assert "No open alerts to acknowledge." in (await client.get("/alerts?count=0")).text
    async with session_factory() as session:
        assert (await session.get_one(Alert, theirs)).status == "open"  # another account's: untouched


async def test_an_alert_of_a_revoked_key_stays_open_and_says_so(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    retired = await _key(session_factory, person, "old laptop", revoked=True)
    used = await make_alert(
        session_factory, person, AlertKind.retired_key_used, key_id=retired, details={"reason": "revoked"}
    )
    live = await make_alert(session_factory, person, AlertKind.after_hours)
    await sign_in(client, person)
    html = (await client.get("/alerts")).text
    row = html.split(f'id="alert-{used}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-testid="key-revoked"' in row and "Revoked</span>" in row and "Retired key used" in html
    assert 'data-testid="key-revoked"' not in html.split(f'id="alert-{live}"', 1)[1].split("</tr>", 1)[0]
    assert badge(html) == 2  # still open: acknowledging is the person's
    # High severity first.
    assert html.index('data-kind="retired_key_used"') < html.index('data-kind="after_hours"')


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        (
            AlertKind.new_country,
            {"country": "FR", "client_ip": "192.0.2.7"},
            "Used from France (FR), new for this connected app (address 192.0.2.7)",
        ),
        (
            AlertKind.new_network,
            {"network": "198.51.100.0/24", "auto_revoked": True},
            "Used from network 198.51.100.0/24, new for this connected app; the connected app was revoked "
            "automatically",
        ),
    ],
)
def test_a_connected_apps_alert_reads_as_the_apps(kind: AlertKind, details: dict[str, object], expected: str) -> None:
    assert summary(Alert(kind=kind.value, details=details, grant_id="00000000-0000-4000-8000-00000000a11e")) == expected
