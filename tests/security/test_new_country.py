"""Where keys are used (issue #31 item 8): each client address's registered country from the data shipped in the
``iptocc`` wheel (``vibexp.core.geo``), recorded with every usage event in the flush, shown per key over REST, and
the ``new_country`` alert (a key's first country is no alert; a country unused for 30 days is new again; raised once,
not per request; ``auto_revoke_on`` may name it).

Requests go through the real app from chosen public addresses (httpx ASGITransport sets the socket peer, which is
the client address when no trusted proxy is configured). The expected countries are what the shipped data says
(looked up with the package itself), so a data refresh that moves a block cannot break the test's logic.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import iptocc
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.alert_sink import RecordingSink
from helpers.factories import TEST_ACTOR, Account, make_key
from vibexp.core.account import update_tenant
from vibexp.core.alerts.models import AUTO_REVOCABLE, AlertKind, KeyCountry
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.geo import country_of
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate
from vibexp.core.usage.models import KeyAction

#: Each test replaces its app's alert sink or counts its alerts from a clean start: an app of its own.
pytestmark = pytest.mark.fresh_app

ACCOUNT_PATH = "/api/v1/account"

#: Public addresses of the registries themselves and well-known resolvers, one or more per registry; what the shipped
#: data says of each is the expected answer (``test_public_addresses_have_the_country_the_shipped_data_gives``).
PUBLIC = (
    "193.0.6.139",  # RIPE NCC
    "2001:67c:2e8:22::c100:68b",  # RIPE NCC, IPv6
    "193.0.11.51",  # RIPE NCC, another /24
    "8.8.8.8",  # ARIN
    "2001:4860:4860::8888",  # ARIN, IPv6
    "1.0.16.1",  # APNIC
    "202.12.29.205",  # APNIC
    "200.3.14.10",  # LACNIC
    "196.216.2.6",  # AFRINIC
)

#: Addresses that have no country: private, loopback, link-local, shared (CGNAT), documentation, unspecified,
#: broadcast, unique-local, not an address at all.
NO_COUNTRY = (
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "::1",
    "169.254.10.20",
    "fe80::1",
    "100.64.0.1",
    "192.0.2.1",
    "198.51.100.7",
    "2001:db8::1",
    "0.0.0.0",
    "255.255.255.255",
    "fc00::1",
    "192.0.0.1",  # IETF protocol assignments
    "198.18.0.1",  # benchmarking
    "192.88.99.1",  # 6to4 relay anycast
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "ff02::1",
    "2001::1",  # Teredo
    "2002::1",  # 6to4
    "64:ff9b::1",  # NAT64
    "100::1",  # discard-only
    "::ffff:10.0.0.1",  # IPv4-mapped private
    "1.2.3.4/24",
    "[::1]",
    " 8.8.8.8",
    "testclient",
    "",
    None,
)


def test_public_addresses_have_the_country_the_shipped_data_gives() -> None:
    countries = {}
    for address in PUBLIC:
        expected = iptocc.country_code(address)
        assert expected is not None, f"the shipped data has no country for {address}"
        assert country_of(address) == expected
        assert len(expected) == 2 and expected.isupper()
        countries[address] = expected
    assert len(set(countries.values())) >= 4  # several registries, several countries: the table means something
    # An IPv4-mapped IPv6 address is its IPv4 address, however written (the package alone would answer None).
    assert country_of("::ffff:8.8.8.8") == country_of("::FFFF:8.8.8.8") == country_of("8.8.8.8")
    assert country_of("0:0:0:0:0:ffff:808:808") == country_of("8.8.8.8")


@pytest.mark.parametrize("address", NO_COUNTRY)
def test_private_loopback_link_local_and_non_addresses_have_no_country(address: str | None) -> None:
    assert country_of(address) is None


def _places() -> tuple[str, str, str]:
    """Two addresses in one country (different networks) and one in another, chosen by what the data says."""
    by_country: dict[str, list[str]] = {}
    for address in PUBLIC:
        country = country_of(address)
        assert country is not None
        by_country.setdefault(country, []).append(address)
    home_country = next(country for country, addresses in by_country.items() if len(addresses) >= 2)
    home, same_country = by_country[home_country][:2]
    abroad = next(addresses[0] for country, addresses in by_country.items() if country != home_country)
    return home, same_country, abroad


async def _use(app: FastAPI, client: httpx.AsyncClient, account: Account, times: int = 1) -> None:
    for _ in range(times):
        response = await client.get(ACCOUNT_PATH, headers=account.headers)
        assert response.status_code == 200, response.text
    await app.state.runtime.usage.flush()


async def test_first_country_is_no_alert_a_new_one_is_raised_once_and_usage_counts_countries(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    home, same_country, abroad = _places()
    await _use(app, clients[home], account, times=2)
    assert sink.of(account.key_id, AlertKind.new_country) == []  # the key's first country
    await _use(app, clients[same_country], account)
    assert sink.of(account.key_id, AlertKind.new_country) == []  # another network, same country
    assert len(sink.of(account.key_id, AlertKind.new_network)) == 1  # ... which new_network does report
    await _use(app, clients["10.9.8.7"], account)  # a private address: no country, no alert, not counted
    for _ in range(3):  # abroad, over three flushes: one alert, not one per request or per flush
        await _use(app, clients[abroad], account, times=2)
    [raised] = sink.of(account.key_id, AlertKind.new_country)
    details = raised.details
    assert details == {
        "country": country_of(abroad),
        "client_ip": abroad,
        "last_seen_at": None,
        "lookback_days": 30,
    }

    async with session_factory() as session:
        known = (await session.execute(select(KeyCountry).where(KeyCountry.key_id == account.key_id))).scalars().all()
        stored = (await session.execute(select(KeyAction.client_ip, KeyAction.country))).all()
    assert sorted(row.country for row in known) == sorted({country_of(home), country_of(abroad)})
    assert {ip: country for ip, country in stored if ip in (home, same_country, abroad, "10.9.8.7")} == {
        home: country_of(home),
        same_country: country_of(home),
        abroad: country_of(abroad),
        "10.9.8.7": None,
    }

    usage = await clients[home].get(f"/api/v1/api-keys/{account.key_id}/usage", headers=account.headers)
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert [(row["country"], row["requests"]) for row in body["countries"]] == [
        (country_of(abroad), 6),
        (country_of(home), 3),
    ]
    assert all(row["last_used_at"] for row in body["countries"])
    assert {action["country"] for action in body["actions"]} == {country_of(home), country_of(abroad), None}


async def test_a_country_unused_for_30_days_is_new_again(
    app: FastAPI,
    account: Account,
    sink: RecordingSink,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    home, _, abroad = _places()
    now = utcnow()
    async with session_scope(session_factory) as session:
        session.add_all(
            [
                KeyCountry(key_id=account.key_id, country=country_of(home), first_seen_at=now - timedelta(days=90),
                           last_seen_at=now - timedelta(days=29)),
                KeyCountry(key_id=account.key_id, country=country_of(abroad), first_seen_at=now - timedelta(days=90),
                           last_seen_at=now - timedelta(days=31)),
            ]
        )  # fmt: skip
    await _use(app, clients[home], account)
    await _use(app, clients[abroad], account)
    [raised] = sink.of(account.key_id, AlertKind.new_country)
    details = raised.details
    assert details["country"] == country_of(abroad) and details["last_seen_at"] is not None  # 31 days: new again


async def test_auto_revoke_on_new_country_revokes_the_key_and_the_alert_is_listed(
    app: FastAPI,
    account: Account,
    clients: dict[str, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    assert AlertKind.new_country in AUTO_REVOCABLE
    async with session_scope(session_factory) as session:
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        await update_tenant(
            session,
            tenant=tenant,
            data=TenantUpdate(auto_revoke_on=["new_country"]),
            actor=TEST_ACTOR,
            server_urls=[],
        )
    home, _, abroad = _places()
    await _use(app, clients[home], account)
    async with session_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.status == "active"  # the first country revokes nothing
    await _use(app, clients[abroad], account)
    async with session_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None and key.status == "revoked"

    reader = await clients[home].get("/api/v1/alerts", params={"kind": "new_country"}, headers=account.headers)
    assert reader.status_code == 401  # the key is revoked: read with a new one
    other = await make_key(session_factory, tenant_id=account.tenant.id)
    listed = await clients[home].get(
        "/api/v1/alerts", params={"kind": "new_country"}, headers={"Authorization": f"Bearer {other}"}
    )
    assert listed.status_code == 200, listed.text
    [alert] = listed.json()["items"]
    assert alert["key_id"] == account.key_id and alert["count"] == 1
    assert alert["details"]["country"] == country_of(abroad) and alert["details"]["auto_revoked"] is True
