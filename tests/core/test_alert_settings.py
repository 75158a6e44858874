"""A tenant's alert settings (issue #16): ``working_hours`` parsing and ``within``, the webhook URL rule, the secret,
``auto_revoke_on``, set through ``update_tenant`` (audited, never with the secret's value)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account
from vibexp.core.account import update_tenant
from vibexp.core.alerts import hours
from vibexp.core.alerts.targets import check_webhook_url
from vibexp.core.audit import service as audit
from vibexp.core.config import get_settings
from vibexp.core.db import session_scope
from vibexp.core.errors import InvalidInput
from vibexp.core.secret_box import SecretBox, default_box
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate

SECRET = "0123456789abcdef-secret"
SERVER = ["http://127.0.0.1:8000", "https://vibexp.example.com"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- working hours ------------------------------------------------------------------------------------------------
def test_working_hours_in_their_zone_across_daylight_saving() -> None:
    berlin = hours.parse("Mon-Fri 08:00-19:00 Europe/Berlin")
    assert berlin.text == "Mon-Fri 08:00-19:00 Europe/Berlin"
    # Wednesday 2026-01-07 (CET, UTC+1): 07:00 UTC is 08:00 there; 18:00 UTC is 19:00 (end exclusive).
    assert berlin.within(_at("2026-01-07T07:00:00")) and not berlin.within(_at("2026-01-07T06:59:00"))
    assert berlin.within(_at("2026-01-07T17:59:00")) and not berlin.within(_at("2026-01-07T18:00:00"))
    # Wednesday 2026-07-08 (CEST, UTC+2): 06:00 UTC is 08:00 there.
    assert berlin.within(_at("2026-07-08T06:00:00")) and not berlin.within(_at("2026-07-08T05:59:00"))
    assert not berlin.within(_at("2026-01-10T10:00:00"))  # a Saturday
    assert hours.within("Mon-Fri 08:00-19:00 Europe/Berlin", _at("2026-01-07T12:00:00"))


def test_day_lists_wrapping_ranges_and_night_shifts() -> None:
    lists = hours.parse("mon,WED,fri 09:00-17:00 UTC")
    assert lists.text == "Mon,Wed,Fri 09:00-17:00 UTC"
    assert lists.within(_at("2026-01-07T10:00:00")) and not lists.within(_at("2026-01-06T10:00:00"))  # Wed / Tue
    weekend = hours.parse("Fri-Mon 10:00-24:00 UTC")  # wraps past Sunday; 24:00 is midnight
    assert weekend.days == frozenset({4, 5, 6, 0})
    assert weekend.within(_at("2026-01-11T23:59:00")) and not weekend.within(_at("2026-01-07T12:00:00"))
    night = hours.parse("Mon-Fri 22:00-06:00 UTC")  # after midnight belongs to the day the shift began
    assert night.within(_at("2026-01-05T23:00:00"))  # Monday night
    assert night.within(_at("2026-01-06T05:59:00"))  # Tuesday early = Monday's shift
    assert not night.within(_at("2026-01-05T05:00:00"))  # Monday early = Sunday's shift: none
    assert night.within(_at("2026-01-10T05:00:00"))  # Saturday early = Friday's shift
    assert not night.within(_at("2026-01-05T12:00:00"))
    mixed = hours.parse("Mon-Wed,Sat 00:00-24:00 UTC")
    assert mixed.within(_at("2026-01-10T00:00:00")) and not mixed.within(_at("2026-01-08T12:00:00"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "expected days, hours and a time zone", id="empty"),
        pytest.param("Mon-Fri 08:00-19:00", "expected days, hours and a time zone", id="no-zone"),
        pytest.param("08:00-19:00 Europe/Berlin", "expected days", id="no-days"),
        pytest.param("Mon-Fri 08:00-19:00 Europe/Berlin extra", "expected days", id="extra-word"),
        pytest.param("Mon-Fry 08:00-19:00 UTC", "unknown day 'Fry'", id="unknown-day"),
        pytest.param("Monday-Friday 08:00-19:00 UTC", "unknown day 'Monday'", id="long-day-name"),
        pytest.param("Mon- 08:00-19:00 UTC", "bad days", id="open-range"),
        pytest.param("Mon,,Fri 08:00-19:00 UTC", "bad days", id="empty-list-item"),
        pytest.param("Mon-Fri 8-19 UTC", "bad time '8'", id="hours-without-minutes"),
        pytest.param("Mon-Fri 08:00 UTC", "bad hours", id="no-end"),
        pytest.param("Mon-Fri 08:00-19:60 UTC", "not a time of day", id="minute-60"),
        pytest.param("Mon-Fri 24:00-06:00 UTC", "not a time of day", id="start-24"),
        pytest.param("Mon-Fri 25:00-26:00 UTC", "not a time of day", id="hour-25"),
        pytest.param("Mon-Fri 09:00-09:00 UTC", "is empty", id="empty-span"),
        pytest.param("Mon-Fri 08:00-19:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'", id="unknown-zone"),
        pytest.param("Mon-Fri 08:00-19:00 europe/berlin", "unknown time zone", id="zone-wrong-case"),
        pytest.param("Mon-Fri 08:00-19:00 ../../etc/passwd", "unknown time zone", id="zone-path"),
        pytest.param("Mon-Fri 08:00-19:00 " + "A" * 100, "at most 100", id="too-long"),
    ],
)
def test_bad_working_hours_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        hours.parse(text)


# -- webhook URL ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/vibexp",
        "http://127.0.0.1:9000/hook",  # loopback, another port: a local receiver
        "https://vibexp.example.com:8443/hook",  # the server's host, another port
        "http://10.0.0.5:8000/hook",
    ],
)
def test_webhook_urls_a_tenant_may_use(url: str) -> None:
    assert check_webhook_url(url, server_urls=SERVER) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("ftp://hooks.example.com/x", "must start with http", id="ftp"),
        pytest.param("javascript:alert(1)", "must start with http", id="javascript"),
        pytest.param("hooks.example.com/x", "must start with http", id="no-scheme"),
        pytest.param("http:///path", "has no host", id="no-host"),
        pytest.param("https://user:pw@hooks.example.com/x", "user:password", id="credentials"),
        pytest.param("http://hooks.example.com:99999/x", "does not parse", id="bad-port"),
        pytest.param("http://hooks.example.com/a b", "no spaces", id="space"),
        pytest.param("https://x.example/" + "a" * 2000, "at most 2000", id="too-long"),
        pytest.param("http://127.0.0.1:8000/api/v1/leaked-keys", "points at this server", id="self"),
        pytest.param("http://localhost:8000/x", "points at this server", id="self-localhost"),
        pytest.param("http://127.9.9.9:8000/x", "points at this server", id="self-127-8"),
        pytest.param("http://[::1]:8000/x", "points at this server", id="self-ipv6-loopback"),
        pytest.param("http://0.0.0.0:8000/x", "points at this server", id="self-any"),
        pytest.param("https://VIBEXP.example.com/hook", "points at this server", id="self-public-default-port"),
        pytest.param("https://vibexp.example.com:443/hook", "points at this server", id="self-public-explicit-port"),
    ],
)
def test_bad_webhook_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_webhook_url(url, server_urls=SERVER)


# -- through update_tenant ------------------------------------------------------------------------------------------
async def _update(factory: async_sessionmaker[AsyncSession], account: Account, **changes: Any) -> Tenant:
    async with session_scope(factory) as session:
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        data = TenantUpdate.model_validate(changes)
        return await update_tenant(session, tenant=tenant, data=data, actor=TEST_ACTOR, server_urls=SERVER)


async def test_alert_settings_are_set_normalised_and_audited_without_the_secret(
    session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    tenant = await _update(
        session_factory,
        account,
        alert_webhook_url="https://hooks.example.com/vibexp",
        alert_webhook_secret=SECRET,
        working_hours="mon-fri 08:00-19:00 Europe/Berlin",
        auto_revoke_on=["new_network", "key_leaked", "new_network"],
    )
    assert tenant.working_hours == "Mon-Fri 08:00-19:00 Europe/Berlin"
    assert tenant.auto_revoke_on == ["key_leaked", "new_network"]
    assert tenant.alert_webhook_url == "https://hooks.example.com/vibexp"
    # Encrypted at rest with the server key (VIBEXP_SECRET_KEY), never the secret itself.
    stored = tenant.alert_webhook_secret
    assert stored is not None and stored.startswith("enc:v1:") and SECRET not in stored
    assert default_box().open(stored) == SECRET and SecretBox("another server key" * 2).open(stored) is None
    # The same secret again (the operator re-applies its Secret on every sync) changes and records nothing.
    again = await _update(session_factory, account, alert_webhook_secret=SECRET)
    assert again.alert_webhook_secret == stored
    await _update(session_factory, account, alert_webhook_secret=SECRET[::-1])
    cleared = await _update(
        session_factory, account, alert_webhook_url=None, alert_webhook_secret=None, working_hours="", auto_revoke_on=[]
    )
    assert (cleared.alert_webhook_url, cleared.alert_webhook_secret, cleared.working_hours) == (None, None, None)
    assert cleared.auto_revoke_on == []
    async with session_factory() as session:
        events = (await audit.list_events(session, tenant_id=account.tenant.id, action="tenant.updated")).items
    assert len(events) == 3
    for event in events:
        assert SECRET not in str(event.details) and SECRET[::-1] not in str(event.details)
    latest, rotated, first = (event.details["changes"] for event in events)
    assert first["alert_webhook_secret"] == "changed" and rotated == {"alert_webhook_secret": "changed"}
    assert first["working_hours"] == {"from": None, "to": "Mon-Fri 08:00-19:00 Europe/Berlin"}
    assert first["auto_revoke_on"] == {"from": [], "to": ["key_leaked", "new_network"]}
    assert latest["alert_webhook_secret"] == "cleared"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"working_hours": "Mon-Fri 8-19 UTC"}, "bad time", id="hours-format"),
        pytest.param({"working_hours": "Mon-Fri 08:00-19:00 Nowhere/City"}, "unknown time zone", id="hours-zone"),
        pytest.param(
            {"alert_webhook_url": "ftp://x.example/", "alert_webhook_secret": SECRET}, "http", id="url-scheme"
        ),
        pytest.param(
            {"alert_webhook_url": "http://localhost:8000/x", "alert_webhook_secret": SECRET},
            "points at this server",
            id="url-self",
        ),
        pytest.param({"alert_webhook_url": "https://hooks.example.com/x"}, "needs a webhook secret", id="no-secret"),
        pytest.param({"alert_webhook_secret": "too-short"}, "16 to 200 characters", id="short-secret"),
        pytest.param({"alert_webhook_secret": "x" * 201}, "16 to 200 characters", id="long-secret"),
        pytest.param({"alert_webhook_secret": "with spaces in the secret"}, "without spaces", id="secret-spaces"),
        pytest.param({"auto_revoke_on": ["key_leaked", "bogus"]}, "unknown alert kind 'bogus'", id="unknown-kind"),
        # Five forged keys with a key's public display prefix raise failed_auth: it must not be able to revoke.
        pytest.param(
            {"auto_revoke_on": ["failed_auth"]}, "failed_auth cannot revoke a key: anyone who knows", id="failed-auth"
        ),
        pytest.param(
            {"auto_revoke_on": ["key_leaked", "failed_auth"]}, "failed_auth cannot revoke", id="failed-auth-among"
        ),
        # Every spelling of this server, resolved (before: only the exact host string was compared).
        pytest.param(
            {"alert_webhook_url": "http://127.1:8000/x", "alert_webhook_secret": SECRET},
            "points at this server",
            id="url-self-short",
        ),
        pytest.param(
            {"alert_webhook_url": "http://2130706433:8000/x", "alert_webhook_secret": SECRET},
            "points at this server",
            id="url-self-decimal",
        ),
        pytest.param(
            {"alert_webhook_url": "http://169.254.169.254/latest/meta-data/", "alert_webhook_secret": SECRET},
            "link-local",
            id="url-metadata",
        ),
    ],
)
async def test_bad_alert_settings_are_refused_and_change_nothing(
    session_factory: async_sessionmaker[AsyncSession], account: Account, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await _update(session_factory, account, **changes)
    async with session_factory() as session:
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        assert (tenant.alert_webhook_url, tenant.alert_webhook_secret, tenant.working_hours) == (None, None, None)
        assert tenant.auto_revoke_on == []
        assert (await audit.list_events(session, tenant_id=account.tenant.id, action="tenant.updated")).items == []


async def test_private_webhook_urls_are_refused_unless_allowed(
    session_factory: async_sessionmaker[AsyncSession], account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIBEXP_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    try:
        for url in (
            "http://10.0.0.5/hook",
            "http://192.168.1.1/hook",
            "http://127.0.0.1:9999/hook",
            "http://[fc00::1]/",
        ):
            with pytest.raises(InvalidInput, match="loopback or private address"):
                await _update(session_factory, account, alert_webhook_url=url, alert_webhook_secret=SECRET)
        monkeypatch.setenv("VIBEXP_WEBHOOK_ALLOW_PRIVATE", "true")
        get_settings.cache_clear()
        tenant = await _update(
            session_factory, account, alert_webhook_url="http://10.0.0.5/hook", alert_webhook_secret=SECRET
        )
        assert tenant.alert_webhook_url == "http://10.0.0.5/hook"
    finally:
        get_settings.cache_clear()
