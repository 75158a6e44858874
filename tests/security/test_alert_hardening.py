"""Issue 26, the alert items, through a real `vibexp serve` on SQLite and PostgreSQL.

* Five forged keys built from a key's public display prefix raise ``failed_auth``; that must never revoke the key
  (``auto_revoke_on`` refuses ``failed_auth``; one stored before is ignored), while the key itself from a
  disallowed address (``disallowed_address``) proves possession and may.
* ``failed_auth`` alerts (and their webhooks) are bounded per key and per source address per hour, however often
  they are acknowledged.
* Acknowledging an alert needs ``alerts:write``: a read-only key cannot silence the alert its own theft raised.
* The audit trail masks key-shaped text in the user agent and in names, before they are cut to length.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR, Account, make_account, make_key
from helpers.receiver import Receiver, verify
from helpers.servers import LiveServer
from vibexp.core.account import update_tenant
from vibexp.core.alerts.models import Alert, AlertKind
from vibexp.core.alerts.service import raise_alert
from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate

pytestmark = pytest.mark.slow

ACCOUNT_PATH = "/api/v1/account"
SECRET = "whsec-" + "hardened" * 3
#: A run of hex after ``vib_`` + 8 that a masked text must never hold.
UNMASKED = re.compile(r"vib_[0-9a-fA-F]{9,}")


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine: AsyncEngine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One `vibexp serve` per database for the module (each test has its own account)."""
    with LiveServer(database_url).start(tmp_path_factory.mktemp("serve")) as live:
        yield live


def forged(key: str) -> dict[str, str]:
    """A well-formed key with the same public display prefix (``vib_`` + 8 hex) and a random rest: no checksum."""
    return {"Authorization": f"Bearer {key[:12]}{secrets.token_hex(28)}"}


async def alerts_of(
    factory: async_sessionmaker[AsyncSession], key_id: str, kind: AlertKind, *, at_least: int = 0, wait: float = 0
) -> list[Alert]:
    """The key's alerts of ``kind``, waiting up to ``wait`` seconds for ``at_least`` of them (the server's flush)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        async with factory() as session:
            rows = list(await session.scalars(select(Alert).where(Alert.key_id == key_id, Alert.kind == kind.value)))
        if len(rows) >= at_least or asyncio.get_running_loop().time() >= deadline:
            return rows
        await asyncio.sleep(0.1)


async def key_status(factory: async_sessionmaker[AsyncSession], key_id: str) -> str:
    async with factory() as session:
        key = await session.get(ApiKey, key_id)
        assert key is not None
        return key.status


async def forge_five(http: httpx.AsyncClient, account: Account) -> None:
    for _ in range(5):
        response = await http.get(ACCOUNT_PATH, headers=forged(account.key))
        assert response.status_code == 401, response.text


# -- item 4: auto-revocation only on evidence of possession ----------------------------------------------------------
async def test_forged_display_prefix_keys_never_revoke_a_key(
    factory: async_sessionmaker[AsyncSession], server: LiveServer
) -> None:
    """Before: with auto_revoke_on [failed_auth], five forged keys revoked the key. A setting stored before the
    refusal (the 0014 migration drops it) is ignored as well."""
    account = await make_account(factory)
    async with session_scope(factory) as session:
        await session.execute(
            update(Tenant).where(Tenant.id == account.tenant.id).values(auto_revoke_on=["failed_auth"])
        )
    async with httpx.AsyncClient(base_url=server.url) as http:
        await forge_five(http, account)
        [alert] = await alerts_of(factory, account.key_id, AlertKind.failed_auth, at_least=1, wait=10)
        assert "auto_revoked" not in alert.details
        assert await key_status(factory, account.key_id) == "active"
        assert (await http.get(ACCOUNT_PATH, headers=account.headers)).status_code == 200


async def test_the_key_from_a_disallowed_address_proves_possession_and_may_revoke(
    factory: async_sessionmaker[AsyncSession], server: LiveServer
) -> None:
    account = await make_account(factory)
    async with session_scope(factory) as session:
        tenant = await session.get_one(Tenant, account.tenant.id)
        await update_tenant(
            session, tenant=tenant, data=TenantUpdate(auto_revoke_on=["disallowed_address"]), actor=TEST_ACTOR
        )
    async with httpx.AsyncClient(base_url=server.url) as http:
        made = await http.post(
            "/api/v1/api-keys",
            json={"name": "fenced", "allowed_cidrs": ["203.0.113.0/24"]},
            headers=account.headers,
        )
        assert made.status_code == 201, made.text
        fenced = Account(tenant=account.tenant, key=made.json()["key"], key_id=made.json()["id"])
        response = await http.get(ACCOUNT_PATH, headers=fenced.headers)
        assert response.status_code == 403 and response.json()["error"]["code"] == "ip_not_allowed"
        account = fenced
        [alert] = await alerts_of(factory, account.key_id, AlertKind.disallowed_address, at_least=1, wait=10)
        assert alert.details["client_ips"] == ["127.0.0.1"] and alert.details["auto_revoked"] is True
        assert await key_status(factory, account.key_id) == "revoked"
    assert await alerts_of(factory, account.key_id, AlertKind.failed_auth) == []  # no longer counted as one


# -- item 4: failed_auth bounded per key and per source, across acknowledgements -----------------------------------
async def test_failed_auth_alerts_and_webhooks_are_bounded_per_key_and_per_source(
    factory: async_sessionmaker[AsyncSession], server: LiveServer
) -> None:
    """Five rounds of five forged keys, each from its own loopback address and each alert acknowledged at once:
    three alerts and three webhooks (the per-key bound). Then another key of the account, from an address that
    already raised three: nothing (the per-source bound). Before: one alert and one webhook per round."""
    account = await make_account(factory)
    other_key = await make_key(factory, tenant_id=account.tenant.id, name="third")
    with Receiver() as receiver:
        async with session_scope(factory) as session:
            tenant = await session.get_one(Tenant, account.tenant.id)
            update_ = TenantUpdate(alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
            await update_tenant(session, tenant=tenant, data=update_, actor=TEST_ACTOR)
        for round_ in range(5):
            transport = httpx.AsyncHTTPTransport(local_address=f"127.0.{round_ % 3 + 5}.{round_ + 1}")
            async with httpx.AsyncClient(transport=transport, base_url=server.url) as http:
                await forge_five(http, account)
            await asyncio.sleep(1.2)  # the server's flush (every 0.5 s) has run the detectors
            async with httpx.AsyncClient(base_url=server.url) as http:
                listed = await http.get("/api/v1/alerts", params={"status": "open"}, headers=account.headers)
                for item in listed.json()["items"]:
                    acked = await http.post(f"/api/v1/alerts/{item['id']}/acknowledge", headers=account.headers)
                    assert acked.status_code == 200, acked.text
        raised = await alerts_of(factory, account.key_id, AlertKind.failed_auth)
        assert len(raised) == 3, [alert.details for alert in raised]
        # The per-source bound: one address raises three alerts on a second key, then a third key's attempts from
        # that address raise nothing, while the same attempts from a fresh address do.
        second, third = await make_key(factory, tenant_id=account.tenant.id), other_key
        for key, address in [(second, "127.0.9.9")] * 3 + [(third, "127.0.9.9"), (third, "127.0.8.8")]:
            transport = httpx.AsyncHTTPTransport(local_address=address)
            async with httpx.AsyncClient(transport=transport, base_url=server.url) as http:
                for _ in range(5):
                    assert (await http.get(ACCOUNT_PATH, headers=forged(key))).status_code == 401
            await asyncio.sleep(1.2)
            async with httpx.AsyncClient(base_url=server.url) as http:
                listed = await http.get("/api/v1/alerts", params={"status": "open"}, headers=account.headers)
                for item in listed.json()["items"]:
                    await http.post(f"/api/v1/alerts/{item['id']}/acknowledge", headers=account.headers)
        assert len(await alerts_of(factory, await _key_id(factory, second), AlertKind.failed_auth)) == 3
        [only] = await alerts_of(factory, await _key_id(factory, third), AlertKind.failed_auth)
        assert only.details["client_ips"] == ["127.0.8.8"]
        for _ in range(50):  # the webhooks of the seven alerts, no more
            if len(receiver.received) >= 7:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        assert len(receiver.received) == 7
        assert all(verify(SECRET, got) for got in receiver.received)
        assert "not raised" in server.log()


async def _key_id(factory: async_sessionmaker[AsyncSession], plaintext: str) -> str:
    async with factory() as session:
        rows = (await session.execute(select(ApiKey.id).where(ApiKey.prefix == plaintext[:12]))).scalars().all()
    [key_id] = rows
    return key_id


# -- also weak: acknowledging needs a write scope -------------------------------------------------------------------
async def test_a_read_only_key_cannot_acknowledge_an_alert(
    factory: async_sessionmaker[AsyncSession], server: LiveServer
) -> None:
    account = await make_account(factory)
    async with session_scope(factory) as session:
        alert = await raise_alert(
            session, tenant_id=account.tenant.id, key_id=account.key_id, kind=AlertKind.new_network, details={}
        )
        assert alert is not None
    async with httpx.AsyncClient(base_url=server.url) as http:
        minted = {}
        for scopes in (["read"], ["audit:read"], ["alerts:write"]):
            made = await http.post(
                "/api/v1/api-keys", json={"name": "-".join(scopes), "scopes": scopes}, headers=account.headers
            )
            assert made.status_code == 201, made.text
            minted[scopes[0]] = {"Authorization": f"Bearer {made.json()['key']}"}
        path = f"/api/v1/alerts/{alert.id}/acknowledge"
        for scope in ("read", "audit:read"):
            assert (await http.get("/api/v1/alerts", headers=minted[scope])).status_code == 200  # it may read them
            refused = await http.post(path, headers=minted[scope])
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "insufficient_scope"
            assert 'scope="alerts:write"' in refused.headers["www-authenticate"]
        async with factory() as session:
            assert (await session.get_one(Alert, alert.id)).status == "open"
        assert (await http.get("/api/v1/alerts", headers=minted["alerts:write"])).status_code == 200  # includes read
        acked = await http.post(path, headers=minted["alerts:write"])
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"


# -- also weak: the audit trail masks keys in every text field -------------------------------------------------------
async def test_the_audit_trail_masks_keys_in_the_user_agent_and_in_cut_names(
    factory: async_sessionmaker[AsyncSession], server: LiveServer
) -> None:
    account = await make_account(factory)
    pasted = "vib_" + secrets.token_hex(32)
    async with httpx.AsyncClient(base_url=server.url) as http:
        headers = {**account.headers, "User-Agent": f"curl/8.5 {pasted} (pasted by mistake)"}
        made = await http.post("/api/v1/api-keys", json={"name": f"ci {pasted}"}, headers=headers)
        assert made.status_code == 201, made.text
        # A memory whose first 80 characters, the audit's name for it, end 60 hex characters into a key.
        memory = await http.post("/api/v1/memories", json={"content": "x" * 16 + pasted}, headers=account.headers)
        assert memory.status_code == 201, memory.text
        deleted = await http.delete(f"/api/v1/memories/{memory.json()['id']}", headers=headers)
        assert deleted.status_code == 204, deleted.text
        events = await http.get("/api/v1/audit-events", headers=account.headers)
    assert events.status_code == 200
    created = next(e for e in events.json()["items"] if e["action"] == "key.created" and "ci " in e["target"]["name"])
    removed = next(e for e in events.json()["items"] if e["action"] == "memory.deleted")
    for event in (created, removed):
        assert event["user_agent"] == f"curl/8.5 {pasted[:12]}… (pasted by mistake)"
    assert created["target"]["name"] == f"ci {pasted[:12]}…"
    assert removed["target"]["name"] == "x" * 16 + pasted[:12] + "…"
    async with factory() as session:
        stored = list(await session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == account.tenant.id)))
    for row in stored:
        for text in (row.user_agent or "", row.target_name or "", row.actor_name, str(row.details)):
            assert not UNMASKED.search(text), text
