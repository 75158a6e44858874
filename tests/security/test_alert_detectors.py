"""The alert detectors (vibexp.core.alerts.detectors, one module each), run by the usage flush on each batch.

Requests go through the real app (httpx ASGITransport from chosen client addresses); the detector's sink is replaced
by a recording fake, so each test sees exactly what would have been handed to ``raise_alert``. One case runs
through a real ``vibexp serve``, where the flush runs in the server and the default sink logs each alert.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.alert_sink import RecordingSink, detector_of
from helpers.factories import TEST_ACTOR, Account, make_account
from helpers.servers import LiveServer
from helpers.windows import away_from_minute_boundary, hours_around_now
from vibexp.core.alerts.detectors import DETECTORS, DetectorLimits, network_of
from vibexp.core.alerts.models import AlertKind, KeyNetwork
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.errors import InvalidApiKey
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey
from vibexp.core.keys.tokens import generate_key
from vibexp.core.tenants.models import Tenant
from vibexp.core.traffic import Refusal, UsageEvent

#: Each test replaces its app's alert sink, limits or detector: an app of its own, not the shared one.
pytestmark = pytest.mark.fresh_app

ACCOUNT_PATH = "/api/v1/account"


async def flush(app: FastAPI) -> None:
    await app.state.runtime.usage.flush()


def random_ipv4() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(200) + 1}"


def typo_of(key: str) -> str:
    """The key with one checksum character changed: well-formed, same display prefix, checksum fails."""
    last = key[-1]
    return key[:-1] + ("0" if last != "0" else "1")


# -- new_network ---------------------------------------------------------------------------------------------------
def test_network_of_groups_ipv4_by_24_and_ipv6_by_48() -> None:
    assert network_of("203.0.113.7") == network_of("203.0.113.250") == "203.0.113.0/24"
    assert network_of("203.0.114.7") == "203.0.114.0/24"
    assert network_of("2001:db8:1::1") == network_of("2001:db8:1:ffff::2") == "2001:db8:1::/48"
    assert network_of("2001:db8:2::1") == "2001:db8:2::/48"
    assert network_of("::ffff:203.0.113.9") == "203.0.113.0/24"
    assert network_of("testclient") is None
    assert network_of(None) is None
    assert network_of("") is None


async def test_new_network_first_network_and_same_24_are_not_alerts_another_24_is(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    home = random_ipv4()
    same_net = home.rsplit(".", 1)[0] + ".254"
    assert (await clients[home].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    assert sink.of(account.key_id, AlertKind.new_network) == []  # the key's first network
    assert (await clients[same_net].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    assert sink.of(account.key_id, AlertKind.new_network) == []  # the same /24
    async with session_factory() as session:
        rows = (await session.execute(select(KeyNetwork).where(KeyNetwork.key_id == account.key_id))).scalars().all()
    assert [row.network for row in rows] == [network_of(home)]
    assert rows[0].last_seen_at > rows[0].first_seen_at  # the upsert moved last_seen_at

    elsewhere = "192.0.2.77"
    assert (await clients[elsewhere].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    [alert] = sink.of(account.key_id, AlertKind.new_network)
    assert alert.tenant_id == account.tenant.id
    assert alert.details["network"] == "192.0.2.0/24" and alert.details["client_ip"] == elsewhere
    assert alert.details["last_seen_at"] is None


async def test_new_network_a_network_unused_for_30_days_is_new_again(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with session_scope(session_factory) as session:
        session.add_all(
            [
                KeyNetwork(key_id=account.key_id, network="198.51.100.0/24", first_seen_at=now - timedelta(days=90),
                           last_seen_at=now - timedelta(days=31)),
                KeyNetwork(key_id=account.key_id, network="198.51.101.0/24", first_seen_at=now - timedelta(days=90),
                           last_seen_at=now - timedelta(days=29)),
            ]
        )  # fmt: skip
    for address in ("198.51.101.5", "198.51.100.5"):
        assert (await clients[address].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    [alert] = sink.of(account.key_id, AlertKind.new_network)
    assert alert.details["network"] == "198.51.100.0/24"  # 31 days: new again; 29 days: known
    assert alert.details["last_seen_at"] is not None


# -- request_spike -------------------------------------------------------------------------------------------------
def history(account: Account, *, per_minute: int) -> list[UsageEvent]:
    """``per_minute`` requests in each of the previous 60 minutes."""
    now = utcnow()
    return [
        UsageEvent(
            key_id=account.key_id,
            tenant_id=account.tenant.id,
            at=now - timedelta(minutes=minutes),
            method="GET",
            route="/api/v1/prompts/{id}",
            action="GET /api/v1/prompts/{id}",
            status=200,
            tool_type="unknown",
            client_ip="10.0.0.1",
        )
        for minutes in range(1, 61)
        for _ in range(per_minute)
    ]


@pytest.mark.parametrize(("requests", "spike"), [(25, False), (35, True)])
async def test_request_spike_against_the_keys_own_average(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    requests: int,
    spike: bool,
) -> None:
    """Floor 20/min, factor 10: a key averaging 3/min may do 30 in a minute; 25 is steady traffic, 35 a spike."""
    detector = detector_of(app)
    detector.limits = DetectorLimits(spike_per_minute=20, spike_factor=10)
    for event in history(account, per_minute=3):
        app.state.runtime.usage.record(event)
    await flush(app)
    await away_from_minute_boundary()
    client = clients[random_ipv4()]
    for _ in range(requests):
        assert (await client.get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    found = sink.of(account.key_id, AlertKind.request_spike)
    if not spike:
        assert found == []
        return
    [alert] = found
    assert alert.details["requests_per_minute"] > 30
    assert alert.details["average_per_minute"] == 3.0 and alert.details["threshold"] == 30.0


async def test_request_spike_floor_without_history(
    app: FastAPI, account: Account, sink: RecordingSink, clients: dict[str, httpx.AsyncClient]
) -> None:
    detector_of(app).limits = DetectorLimits(spike_per_minute=20, spike_factor=10)
    await away_from_minute_boundary()
    client = clients[random_ipv4()]
    for _ in range(20):
        await client.get(ACCOUNT_PATH, headers=account.headers)
    await flush(app)
    assert sink.of(account.key_id, AlertKind.request_spike) == []  # 20 is not above the floor
    for _ in range(5):
        await client.get(ACCOUNT_PATH, headers=account.headers)
    await flush(app)
    [alert] = sink.of(account.key_id, AlertKind.request_spike)
    assert alert.details["requests_per_minute"] == 25 and alert.details["threshold"] == 20.0


# -- failed_auth ---------------------------------------------------------------------------------------------------
async def test_failed_auth_four_typos_are_no_alert_the_fifth_is(
    app: FastAPI, account: Account, sink: RecordingSink, clients: dict[str, httpx.AsyncClient]
) -> None:
    attacker = random_ipv4()
    typo = {"Authorization": f"Bearer {typo_of(account.key)}"}
    for _ in range(4):
        response = await clients[attacker].get(ACCOUNT_PATH, headers=typo)
        assert response.status_code == 401 and "typo" in response.json()["error"]["message"]
    await flush(app)
    assert sink.of(account.key_id, AlertKind.failed_auth) == []
    assert (await clients[attacker].get(ACCOUNT_PATH, headers=typo)).status_code == 401
    await flush(app)
    [alert] = sink.of(account.key_id, AlertKind.failed_auth)
    assert alert.tenant_id == account.tenant.id
    assert alert.details == {"attempts": 5, "window_seconds": 300.0, "reasons": ["typo"], "client_ips": [attacker]}


async def test_failed_auth_attempts_spread_beyond_the_window_are_no_alert(
    app: FastAPI, account: Account, sink: RecordingSink, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        prefix = (await session.execute(select(ApiKey.prefix).where(ApiKey.id == account.key_id))).scalar_one()
    recorder = app.state.runtime.usage
    now = utcnow()
    for seconds in (400, 390, 380, 370, 0):  # four long ago, one now: never five within 300 s
        recorder.record_refusal(Refusal(reason="typo", at=now - timedelta(seconds=seconds), client_ip="10.0.0.9",
                                        key_prefix=prefix))  # fmt: skip
    await flush(app)
    assert sink.of(account.key_id, AlertKind.failed_auth) == []


async def test_failed_auth_typos_of_another_prefix_and_unknown_keys_count_against_nobody(
    app: FastAPI, account: Account, sink: RecordingSink, clients: dict[str, httpx.AsyncClient]
) -> None:
    stranger = "vib_" + secrets.token_hex(32)
    for _ in range(6):
        assert (await clients[random_ipv4()].get(ACCOUNT_PATH, headers={"Authorization": f"Bearer {stranger}"})
                ).status_code == 401  # fmt: skip
    await flush(app)
    assert [call for call in sink.calls if call.kind == AlertKind.failed_auth] == []


# -- retired_key_used ----------------------------------------------------------------------------------------------
async def test_retired_key_used_revoked_key_presented_reported_from_the_negative_cache_too(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    client = clients[random_ipv4()]
    assert (await client.get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    assert sink.of(account.key_id, AlertKind.retired_key_used) == []  # an active key is no alert
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None
        await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
    verifier = app.state.runtime.verifier
    for _ in range(2):  # the first refusal reads the database, the second comes from the negative cache
        with pytest.raises(InvalidApiKey) as refused:
            await verifier.verify(f"Bearer {account.key}")
        assert (refused.value.reason, refused.value.key_id) == ("revoked", account.key_id)
    for _ in range(2):
        assert (await client.get(ACCOUNT_PATH, headers=account.headers)).status_code == 401
    await flush(app)
    [alert] = sink.of(account.key_id, AlertKind.retired_key_used)
    assert alert.tenant_id == account.tenant.id
    assert alert.details["reason"] == "revoked" and alert.details["attempts"] == 2


async def test_retired_key_used_expired_key(
    app: FastAPI,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    account = await make_account(session_factory)
    async with session_scope(session_factory) as session:
        soon = keys.KeyPermissions(expires_at=utcnow() + timedelta(seconds=1))
        new = await keys.create_key(
            session, actor=TEST_ACTOR, tenant_id=account.tenant.id, name="short-lived", source="cli", permissions=soon
        )
    headers = {"Authorization": f"Bearer {new.plaintext}"}
    client = clients[random_ipv4()]
    assert (await client.get(ACCOUNT_PATH, headers=headers)).status_code == 200
    await asyncio.sleep(1.1)
    assert (await client.get(ACCOUNT_PATH, headers=headers)).status_code == 401  # refused from the cached entry
    await flush(app)
    [alert] = sink.of(new.record.id, AlertKind.retired_key_used)
    assert alert.details["reason"] == "expired"
    assert sink.of(account.key_id, AlertKind.retired_key_used) == []


@pytest.mark.parametrize(("zone", "outside"), [("UTC", False), ("Asia/Tokyo", True)])
async def test_after_hours_inside_and_outside_across_a_time_zone(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
    zone: str,
    outside: bool,
) -> None:
    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 55:
        await asyncio.sleep(6)  # stay inside the hour the working hours are made of
    working_hours = hours_around_now(zone)
    async with session_scope(session_factory) as session:
        await session.execute(update(Tenant).where(Tenant.id == account.tenant.id).values(working_hours=working_hours))
    assert (await clients[random_ipv4()].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    found = sink.of(account.key_id, AlertKind.after_hours)
    if not outside:
        assert found == []
        return
    [alert] = found
    assert alert.details["working_hours"] == working_hours
    assert alert.details["local_time"].endswith("+09:00")  # read in Tokyo


async def test_after_hours_without_working_hours_is_never_an_alert(
    app: FastAPI, account: Account, sink: RecordingSink, clients: dict[str, httpx.AsyncClient]
) -> None:
    assert (await clients[random_ipv4()].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)
    assert sink.calls == []  # first network, steady, no hours set: nothing at all


# -- the hot path, and a sink that fails -----------------------------------------------------------------------------
async def test_a_failing_sink_loses_no_usage(
    app: FastAPI,
    account: Account,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async def broken(session: AsyncSession, /, **kwargs: Any) -> object:
        raise RuntimeError("the alert service is down")

    detector_of(app).sink = broken
    revoked = await make_account(session_factory)
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, revoked.key_id)
        assert key is not None
        await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
    client = clients[random_ipv4()]
    assert (await client.get(ACCOUNT_PATH, headers=revoked.headers)).status_code == 401
    assert (await client.get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    await flush(app)  # the detector fails; the flush does not
    async with session_factory() as session:
        count = (await session.execute(select(ApiKey.request_count).where(ApiKey.id == account.key_id))).scalar_one()
    assert count == 1


# -- through a real `vibexp serve` -------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_end_to_end_in_a_live_server_new_network_and_retired_key(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    try:
        account = await make_account(factory)
        retired = await make_account(factory)
        async with session_scope(factory) as session:
            key = await session.get(ApiKey, retired.key_id)
            assert key is not None
            await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
        with LiveServer(database_url).start(tmp_path) as server:
            # Two loopback addresses in different /24s: 127.0.0.1 and 127.0.1.1.
            for local in ("127.0.0.1", "127.0.1.1"):
                transport = httpx.AsyncHTTPTransport(local_address=local)
                async with httpx.AsyncClient(transport=transport, base_url=server.url) as http:
                    assert (await http.get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
                    assert (await http.get(ACCOUNT_PATH, headers=retired.headers)).status_code == 401
                await asyncio.sleep(1.2)  # the server's flush (every 0.5 s) runs between the two
            new_network = re.compile(rf"alert new_network: key {account.key_id} .*'network': '127\.0\.1\.0/24'")
            retired_used = re.compile(rf"alert retired_key_used: key {retired.key_id} .*'reason': 'revoked'")
            for _ in range(50):
                log = server.log()
                if new_network.search(log) and retired_used.search(log):
                    break
                await asyncio.sleep(0.1)
            assert new_network.search(log), log
            assert retired_used.search(log), log
            assert not re.search(rf"alert new_network: key {account.key_id} .*127\.0\.0\.0/24", log)  # its first
            assert account.key not in log and retired.key not in log
        async with factory() as session:
            networks = (
                (await session.execute(select(KeyNetwork.network).where(KeyNetwork.key_id == account.key_id)))
                .scalars()
                .all()
            )
        assert sorted(networks) == ["127.0.0.0/24", "127.0.1.0/24"]
    finally:
        await engine.dispose()


# -- thresholds ------------------------------------------------------------------------------------------------------
def test_limits_come_from_the_alert_settings_with_the_documented_defaults() -> None:
    assert DetectorLimits.from_settings(object()) == DetectorLimits(
        new_network_days=30, spike_per_minute=600, spike_factor=10.0, failed_auth_threshold=5, failed_auth_window=300.0
    )
    configured = SimpleNamespace(
        alert_new_network_days=7,
        alert_spike_per_minute=50,
        alert_spike_factor=4.5,
        alert_failed_auth_threshold=3,
        alert_failed_auth_window=60,
    )
    assert DetectorLimits.from_settings(configured) == DetectorLimits(
        new_network_days=7, spike_per_minute=50, spike_factor=4.5, failed_auth_threshold=3, failed_auth_window=60.0
    )


# -- what the request path hands the flush ---------------------------------------------------------------------------
class SpyDetector:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        self.refusals: list[Refusal] = []

    async def detect(self, events: Sequence[UsageEvent], refusals: Sequence[Refusal]) -> None:
        self.events += events
        self.refusals += refusals


async def test_refused_requests_append_one_refusal_with_the_prefix_or_the_key_id_never_the_key(
    app: FastAPI,
    account: Account,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    spy = SpyDetector()
    app.state.runtime.usage.detector = spy
    revoked = await make_account(session_factory)
    async with session_scope(session_factory) as session:
        key = await session.get(ApiKey, revoked.key_id)
        assert key is not None
        await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
    client = clients["203.0.113.5"]
    assert (await client.get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
    assert (
        await client.get(ACCOUNT_PATH, headers={"Authorization": f"Bearer {typo_of(account.key)}"})
    ).status_code == 401
    assert (await client.get(ACCOUNT_PATH, headers=revoked.headers)).status_code == 401
    # Not about any key (missing, malformed, a well-formed key that exists nowhere): no refusal recorded for them.
    for headers in (
        {},
        {"Authorization": "Bearer vib_short"},
        {"Authorization": f"Bearer {generate_key()}"},
    ):
        assert (await client.get(ACCOUNT_PATH, headers=headers)).status_code == 401
    await flush(app)
    assert [event.key_id for event in spy.events] == [account.key_id]
    typo, retired = spy.refusals
    assert (typo.reason, typo.key_prefix, typo.key_id, typo.client_ip) == (
        "typo",
        account.key[:12],
        None,
        "203.0.113.5",
    )
    assert (retired.reason, retired.key_id, retired.tenant_id, retired.key_prefix) == (
        "revoked",
        revoked.key_id,
        revoked.tenant.id,
        None,
    )
    assert account.key not in repr(spy.refusals) and typo_of(account.key) not in repr(spy.refusals)


async def test_each_new_network_is_reported_but_a_lasting_condition_once_a_minute(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 55:
        await asyncio.sleep(6)
    async with session_scope(session_factory) as session:
        await session.execute(
            update(Tenant).where(Tenant.id == account.tenant.id).values(working_hours=hours_around_now("Asia/Tokyo"))
        )
    for address in ("10.81.0.1", "10.82.0.1", "10.83.0.1"):
        assert (await clients[address].get(ACCOUNT_PATH, headers=account.headers)).status_code == 200
        await flush(app)
    assert [call.details["network"] for call in sink.of(account.key_id, AlertKind.new_network)] == [
        "10.82.0.0/24",
        "10.83.0.0/24",
    ]
    assert len(sink.of(account.key_id, AlertKind.after_hours)) == 1  # three flushes outside hours, one alert


# -- the detector list -----------------------------------------------------------------------------------------------
def test_every_alert_kind_has_one_detector_but_the_leak_report() -> None:
    """A new AlertKind needs its detector (or its own raiser, as the leak report is) and a new detector its kind."""
    kinds = [make(lambda: 0.0).kind for make in DETECTORS]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == set(AlertKind) - {AlertKind.key_leaked}


def test_only_lasting_conditions_are_held_back_between_flushes() -> None:
    """A spike, a night of use, a retired or a disallowed key go to the sink once per ``repeat_after``; a new network
    (once by nature) and a failed_auth run (bounded per hour instead) go every time."""
    detectors = [make(lambda: 0.0) for make in DETECTORS]
    assert {d.kind for d in detectors if d.lasting} == {
        AlertKind.request_spike,
        AlertKind.after_hours,
        AlertKind.retired_key_used,
        AlertKind.disallowed_address,
    }
