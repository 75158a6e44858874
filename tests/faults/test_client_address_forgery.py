"""The client address through a real `vibexp serve`: exactly one layer decides it, and every consumer uses it.

* With ``VIBEXP_TRUSTED_PROXIES`` empty, ``X-Forwarded-For`` from loopback (a local reverse proxy, a tunnel,
  ``kubectl port-forward``, a local user) changes nothing: allow-lists, the audit trail, usage and the access log
  all see the socket peer. (uvicorn's own proxy handling used to trust loopback and rewrite the peer.)
* With 127.0.0.1 trusted, the forwarded address counts, and every per-client throttle (auth failures, dashboard
  sign-in, leak reports) keys on it: one client's garbage does not lock out the others behind the same proxy.
* A garbage or overlong ``X-Forwarded-For`` entry is never a 500 (on PostgreSQL it used to be, for sign-in, key
  deletes and leak reports, whose key then stayed active).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import csrf_token, make_person
from helpers.factories import Account, make_account
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.core.audit.models import AuditEvent
from vibexp.core.keys.models import ApiKey
from vibexp.core.keys.report import LEAK_REPORT_PATH

pytestmark = pytest.mark.slow

FORGED = "203.0.113.5"
OTHER = "198.51.100.7"
GARBAGE = "x" * 300


@pytest.fixture(scope="module")
def servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """``plain`` trusts no proxy; ``proxied`` sits behind a proxy on 127.0.0.1. ``FORWARDED_ALLOW_IPS`` names
    another address, as behind the chart's Ingress (whose controller is not on loopback): uvicorn must not be the
    layer that decides, whatever its own setting says."""
    plain = LiveServer(database_url)
    proxied = LiveServer(
        database_url, env={"VIBEXP_TRUSTED_PROXIES": "127.0.0.1/32", "FORWARDED_ALLOW_IPS": "192.0.2.1"}
    )
    start_servers((plain, proxied), tmp_path_factory.mktemp("logs"))
    try:
        yield plain, proxied
    finally:
        plain.stop()
        proxied.stop()


@pytest.fixture
async def account(db_factory: async_sessionmaker[AsyncSession]) -> Account:
    return await make_account(db_factory)


async def _fenced_key(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    minted = await client.post(
        "/api/v1/api-keys", json={"name": "fenced", "allowed_cidrs": ["203.0.113.0/24"]}, headers=account.headers
    )
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['key']}"}


async def _last_ip(factory: async_sessionmaker[AsyncSession], key_id: str, expected: str) -> str | None:
    deadline = time.monotonic() + 10
    while True:
        async with factory() as session:
            key = await session.get(ApiKey, key_id)
            assert key is not None
            if key.last_ip == expected or time.monotonic() > deadline:
                return key.last_ip
        await asyncio.sleep(0.25)


async def _audit_ips(factory: async_sessionmaker[AsyncSession], tenant_id: str, key_name: str) -> list[str | None]:
    """The client address of each ``key.created`` event for keys of that name."""
    async with factory() as session:
        rows = await session.scalars(
            select(AuditEvent.client_ip).where(
                AuditEvent.tenant_id == tenant_id,
                AuditEvent.action == "key.created",
                AuditEvent.target_name == key_name,
            )
        )
        return list(rows)


async def test_a_forged_forwarded_for_from_loopback_changes_nothing(
    servers: tuple[LiveServer, LiveServer], account: Account, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    plain, _ = servers
    forged = {"X-Forwarded-For": FORGED}
    async with httpx.AsyncClient(base_url=plain.url, timeout=20) as client:
        fenced = await _fenced_key(client, account)
        refused = await client.get("/api/v1/prompts", headers={**fenced, **forged})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "ip_not_allowed"
        assert "127.0.0.1" in refused.json()["error"]["message"]
        # The audit trail names the peer (a key minted with a forged header).
        minted = await client.post("/api/v1/api-keys", json={"name": "audited"}, headers={**account.headers, **forged})
        assert minted.status_code == 201, minted.text
        # Usage records the peer.
        assert (await client.get("/api/v1/prompts", headers={**account.headers, **forged})).status_code == 200
    assert await _audit_ips(db_factory, account.tenant.id, "audited") == ["127.0.0.1"]
    assert await _last_ip(db_factory, account.key_id, "127.0.0.1") == "127.0.0.1"
    await asyncio.sleep(0.3)
    assert FORGED not in plain.log()  # nor the access log


async def test_a_trusted_proxy_names_the_client(
    servers: tuple[LiveServer, LiveServer], account: Account, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    _, proxied = servers
    async with httpx.AsyncClient(base_url=proxied.url, timeout=20) as client:
        fenced = await _fenced_key(client, account)
        assert (await client.get("/api/v1/prompts", headers={**fenced, "X-Forwarded-For": FORGED})).status_code == 200
        assert (await client.get("/api/v1/prompts", headers=fenced)).status_code == 403
        minted = await client.post(
            "/api/v1/api-keys", json={"name": "audited"}, headers={**account.headers, "X-Forwarded-For": OTHER}
        )
        assert minted.status_code == 201, minted.text
        assert (await client.get("/api/v1/prompts", headers={**account.headers, "X-Forwarded-For": OTHER})).is_success
    assert await _audit_ips(db_factory, account.tenant.id, "audited") == [OTHER]
    assert await _last_ip(db_factory, account.key_id, OTHER) == OTHER
    await asyncio.sleep(0.3)
    assert f"{OTHER}:" in proxied.log()  # the access log names the client too


@pytest.mark.parametrize("which", ["plain", "proxied"])
async def test_a_garbage_forwarded_for_is_never_a_500(
    servers: tuple[LiveServer, LiveServer],
    account: Account,
    db_factory: async_sessionmaker[AsyncSession],
    which: str,
) -> None:
    server = servers[0] if which == "plain" else servers[1]
    person = await make_person(db_factory)
    garbage = {"X-Forwarded-For": f"{GARBAGE}, {GARBAGE}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        # Sign-in (its per-address bucket and the audit trail).
        token = await csrf_token(client)
        signed_in = await client.post(
            "/login",
            data={"email": person.email, "password": person.password, "csrf_token": token},
            headers=garbage,
        )
        assert signed_in.status_code == 303, signed_in.text
        # A key delete (audited).
        minted = await client.post("/api/v1/api-keys", json={"name": "doomed"}, headers=account.headers)
        assert minted.status_code == 201
        deleted = await client.delete(f"/api/v1/api-keys/{minted.json()['id']}", headers={**account.headers, **garbage})
        assert deleted.status_code in (200, 204), deleted.text
        # A leak report: the reported key is revoked.
        leaked = await client.post("/api/v1/api-keys", json={"name": "leaked"}, headers=account.headers)
        report = await client.post(LEAK_REPORT_PATH, json=[{"token": leaked.json()["key"]}], headers=garbage)
        assert report.status_code == 202, report.text
        revoked = {"Authorization": f"Bearer {leaked.json()['key']}"}
        assert (await client.get("/api/v1/prompts", headers=revoked)).status_code == 401
        # Usage of a key sent with it.
        assert (await client.get("/api/v1/prompts", headers={**account.headers, **garbage})).status_code == 200
    assert await _last_ip(db_factory, account.key_id, "127.0.0.1") == "127.0.0.1"
    assert "Traceback" not in server.log()


async def test_auth_failures_throttle_the_client_not_the_proxy(
    servers: tuple[LiveServer, LiveServer], account: Account
) -> None:
    _, proxied = servers
    attacker = {"X-Forwarded-For": FORGED}
    async with httpx.AsyncClient(base_url=proxied.url, timeout=20) as client:
        statuses = []
        for _ in range(105):  # the default budget is 100 failures a minute
            garbage = {"Authorization": "Bearer vib_" + secrets.token_hex(32), **attacker}
            statuses.append((await client.get("/api/v1/prompts", headers=garbage)).status_code)
        assert statuses[:100] == [401] * 100 and statuses[100:] == [429] * 5
        assert (await client.get("/api/v1/prompts", headers={**account.headers, **attacker})).status_code == 429
        # Another client behind the same proxy is not locked out.
        other = await client.get("/api/v1/prompts", headers={**account.headers, "X-Forwarded-For": OTHER})
        assert other.status_code == 200, other.text


async def test_sign_in_failures_throttle_the_client_not_the_proxy(
    servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    _, proxied = servers
    attacker = {"X-Forwarded-For": f"192.0.2.{secrets.randbelow(200) + 20}"}  # its bucket lasts 15 minutes
    person = await make_person(db_factory)
    async with httpx.AsyncClient(base_url=proxied.url, timeout=20) as client:
        statuses = []
        for i in range(21):  # the default budget is 20 failed sign-ins per address
            token = await csrf_token(client)
            wrong = {"email": f"nobody-{i}-{secrets.token_hex(4)}@example.com", "password": "x", "csrf_token": token}
            statuses.append((await client.post("/login", data=wrong, headers=attacker)).status_code)
        assert statuses[-1] == 429 and 429 not in statuses[:20], statuses
    async with httpx.AsyncClient(base_url=proxied.url, timeout=20) as client:
        token = await csrf_token(client)
        right = {"email": person.email, "password": person.password, "csrf_token": token}
        signed_in = await client.post("/login", data=right, headers={"X-Forwarded-For": OTHER})
        assert signed_in.status_code == 303, signed_in.text


async def test_leak_reports_throttle_the_client_not_the_proxy(servers: tuple[LiveServer, LiveServer]) -> None:
    _, proxied = servers
    attacker = {"X-Forwarded-For": f"192.0.2.{secrets.randbelow(200) + 20}"}
    unknown = [{"token": "vib_" + secrets.token_hex(32)}]
    async with httpx.AsyncClient(base_url=proxied.url, timeout=20) as client:
        statuses = [
            (await client.post(LEAK_REPORT_PATH, json=unknown, headers=attacker)).status_code for _ in range(31)
        ]
        assert statuses == [202] * 30 + [429], statuses
        other = await client.post(LEAK_REPORT_PATH, json=unknown, headers={"X-Forwarded-For": OTHER})
        assert other.status_code == 202, other.text
