"""``POST /api/v1/leaked-keys`` (issue #16): no key needed, blind 202, active keys revoked at once and audited as
``key.leaked``, bad reports refused whole (nothing revoked), throttled per client address."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account, make_key
from oauth.flow import Connect, list_tools
from vibexp.api.endpoints.leaks import REPORTS_PER_MINUTE
from vibexp.core.access import Role
from vibexp.core.audit import service as audit
from vibexp.core.keys.tokens import generate_key
from vibexp.core.oauth.tokens import new_access_token

URL = "/api/v1/leaked-keys"


def _reporter(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_reported_key_is_revoked_at_once_and_audited(
    app: FastAPI, client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200
    report = [
        {"token": account.key, "url": "https://gist.github.com/x/1", "source": "vibexp scan in CI"},
        {"token": generate_key()},  # matches nothing: the answer is the same
    ]
    async with _reporter(app, "198.51.100.7") as scanner:
        response = await scanner.post(URL, json=report, headers={"User-Agent": "scanner/1"})
    assert response.status_code == 202 and response.json() == {"received": 2}
    refused = await client.get("/api/v1/prompts", headers=account.headers)
    assert refused.status_code == 401  # this process dropped it from its cache on commit

    async with session_factory() as session:
        events = (await audit.list_events(session, tenant_id=account.tenant.id, action="key.leaked")).items
    assert len(events) == 1
    event = events[0]
    assert (event.target_id, event.actor_type, event.actor_name) == (account.key_id, "system", "leaked-key report")
    assert (event.client_ip, event.user_agent) == ("198.51.100.7", "scanner/1")
    assert event.details == {"url": "https://gist.github.com/x/1", "source": "vibexp scan in CI"}

    async with _reporter(app, "198.51.100.7") as scanner:  # again: already revoked, still 202, nothing new
        assert (await scanner.post(URL, json=report[:1])).status_code == 202
    async with session_factory() as session:
        assert len((await audit.list_events(session, tenant_id=account.tenant.id, action="key.leaked")).items) == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"token": "x"}, id="not-a-list"),
        pytest.param([], id="empty"),
        pytest.param("vib_" + "0" * 64, id="a-string"),
        pytest.param([{"token": "vib_" + "0" * 64}] * 101, id="over-100"),
        pytest.param([{"token": "hello"}], id="not-key-shaped"),
        pytest.param([{"url": "https://x"}], id="no-token"),
        pytest.param([42, "garbage", None], id="garbage"),
        pytest.param([{"token": "vib_" + "0" * 64, "url": "u" * 2001}], id="url-too-long"),
    ],
)
async def test_bad_reports_are_refused_and_revoke_nothing(
    app: FastAPI, client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], body: object
) -> None:
    account = await make_account(session_factory)
    # A valid active key rides along with the garbage: the whole report is refused, so it is not revoked.
    payload = [*body, {"token": account.key}] if isinstance(body, list) and body and body[0] != 42 else body
    async with _reporter(app, "203.0.113.9") as scanner:
        response = await scanner.post(URL, json=payload)
    assert response.status_code == 422, response.text
    assert set(response.json()["error"]) >= {"code", "message"}
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200


async def test_not_json_is_refused(app: FastAPI) -> None:
    async with _reporter(app, "203.0.113.10") as scanner:
        response = await scanner.post(URL, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"]  # as every endpoint answers bad JSON


async def test_reports_are_throttled_per_address(
    app: FastAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(session_factory)
    other_key = await make_key(session_factory, tenant_id=account.tenant.id)
    unknown = [{"token": generate_key()}]
    async with _reporter(app, "192.0.2.50") as flood, _reporter(app, "192.0.2.51") as neighbour:
        for _ in range(REPORTS_PER_MINUTE):
            assert (await flood.post(URL, json=unknown)).status_code == 202
        throttled = await flood.post(URL, json=[{"token": other_key}])
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
        assert throttled.json()["error"]["code"] == "rate_limited"
        # The throttled report revoked nothing; another address is not affected.
        ok = await neighbour.post(URL, json=unknown)
        assert ok.status_code == 202
    checked = await _reporter(app, "192.0.2.52").get(
        "/api/v1/prompts", headers={"Authorization": f"Bearer {other_key}"}
    )
    assert checked.status_code == 200


async def test_a_reported_oauth_token_revokes_its_connected_app(
    app: FastAPI, client: httpx.AsyncClient, account: Account, oauth_person: Connect
) -> None:
    alice = await oauth_person(Role.member)
    tokens = await alice.tokens()
    assert (await list_tools(alice.http, tokens["access_token"])).status_code == 200
    report = [
        {"token": tokens["refresh_token"], "url": "https://gist.github.com/x/2", "source": "a scanner"},
        {"token": new_access_token()},  # matches nothing: the answer is the same
    ]
    async with _reporter(app, "198.51.100.8") as scanner:
        response = await scanner.post(URL, json=report)
    assert response.status_code == 202 and response.json() == {"received": 2}
    assert (await list_tools(alice.http, tokens["access_token"])).status_code == 401  # its access token too
    [grant] = (await client.get("/api/v1/oauth/grants", headers=account.headers)).json()["items"]
    assert grant["revoked_reason"] == "leaked"
    events = await client.get("/api/v1/audit-events", headers=account.headers, params={"action": "oauth.revoked"})
    [event] = events.json()["items"]
    assert event["details"] == {
        "reason": "leaked",
        "client_id": alice.client_id,
        "url": "https://gist.github.com/x/2",
        "source": "a scanner",
    }
    assert event["actor"]["name"] == "leaked-key report"
    assert tokens["refresh_token"] not in events.text
    # The account hears of it as of a leaked key: a key_leaked alert on the grant, naming its person.
    alerts = await client.get("/api/v1/alerts", headers=account.headers, params={"kind": "key_leaked"})
    [alert] = alerts.json()["items"]
    assert alert["grant_id"] == grant["id"] and alert["key_id"] is None, alert
    assert alert["credential"] == {"kind": "grant", "id": grant["id"]}, alert
    assert (
        alert["details"]["url"] == "https://gist.github.com/x/2" and alert["owner"]["user_id"] == alice.person.user_id
    )
    assert tokens["refresh_token"] not in alerts.text
