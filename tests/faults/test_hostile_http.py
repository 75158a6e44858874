"""Hostile and odd HTTP against a real server: clean refusals, never a 500, and no key in any log."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import csrf_token, make_person
from helpers.factories import Account, make_account
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.api.app import create_app
from vibexp.api.settings import ApiSettings
from vibexp.core.keys.tokens import generate_key

pytestmark = pytest.mark.slow

JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database_url)
    start_servers([live], tmp_path_factory.mktemp("logs"))
    with live:
        yield live


@pytest.fixture
async def account(db_factory: async_sessionmaker[AsyncSession]) -> Account:
    return await make_account(db_factory)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


async def test_two_authorization_headers_are_refused_whichever_is_valid(server: LiveServer, account: Account) -> None:
    valid = account.headers["Authorization"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for pair in ((valid, "Bearer vib_" + "0" * 64), ("Bearer vib_" + "0" * 64, valid), (valid, valid)):
            for path in ("/api/v1/prompts", "/mcp/v1/common"):
                response = await client.get(path, headers=[("Authorization", pair[0]), ("Authorization", pair[1])])
                assert "exactly one Authorization header" in _error(response, 401, "invalid_api_key")
                assert response.headers["www-authenticate"].startswith("Bearer")
        # One header is fine.
        assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200


async def test_a_header_over_8_kib_gets_431_before_anything_reads_it(server: LiveServer, account: Account) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        big = "a" * 9000
        cases = [
            ("/api/v1/prompts", {"Authorization": "Bearer vib_" + big}),
            ("/api/v1/prompts", {**account.headers, "X-Padding": big}),
            ("/mcp/v1/common", {**account.headers, "X-Padding": big}),
            ("/login", {"Cookie": "vibexp_session=" + big}),
        ]
        for path, headers in cases:
            response = await client.get(path, headers=headers)
            assert str(8192) in _error(response, 431, "request_header_fields_too_large")
        # Many headers that together are too large.
        many = [(f"X-Pad-{i}", "b" * 4000) for i in range(10)]
        _error(
            await client.get("/api/v1/prompts", headers=[*account.headers.items(), *many]),
            431,
            "request_header_fields_too_large",
        )
        # Just under the cap is served.
        ok = await client.get("/api/v1/prompts", headers={**account.headers, "X-Padding": "a" * 8000})
        assert ok.status_code == 200
    assert "Traceback" not in server.log()


async def test_an_mcp_body_too_deep_or_not_json_is_a_parse_error_never_500(
    server: LiveServer, account: Account
) -> None:
    bodies = [b"[" * 100_000, b"{" * 50_000, b"\xff\xfe{", b'{"jsonrpc": "2.0", "id": 1, "method": ', b"", b"null"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for body in bodies:
            response = await client.post("/mcp/v1/common", content=body, headers={**account.headers, **JSONRPC_HEADERS})
            assert 400 <= response.status_code < 500, (body[:20], response.status_code, response.text)
            payload = response.json()
            assert "error" in payload, payload
        # The server still answers a proper call afterwards.
        fine = await client.post(
            "/mcp/v1/common",
            content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
            headers={**account.headers, **JSONRPC_HEADERS},
        )
        assert fine.status_code == 200 and fine.json()["result"]["tools"]
    assert "Traceback" not in server.log()


async def test_a_nul_byte_in_the_sign_in_form_is_a_4xx(
    server: LiveServer, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(db_factory)
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        for email, password in (
            (person.email + "\x00", person.password),
            (person.email, person.password + "\x00"),
            ("\x00", "x"),
        ):
            token = await csrf_token(client)
            response = await client.post("/login", data={"email": email, "password": password, "csrf_token": token})
            assert 400 <= response.status_code < 500, response.text
            assert "Wrong e-mail or password" in response.text
    assert "Traceback" not in server.log()


async def test_a_key_in_a_query_string_or_path_never_reaches_the_log(server: LiveServer, account: Account) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await client.get(f"/api/v1/prompts?api_key={account.key}", headers=account.headers)
        await client.get(f"/api/v1/prompts?access_token={account.key}&x=1")
        await client.get(f"/api/v1/{account.key}/prompts", headers=account.headers)
        await client.get(f"/login?next=/{account.key}")
        await client.post(f"/mcp/v1/common?key={account.key}", content=b"{}", headers=JSONRPC_HEADERS)
    await asyncio.sleep(0.3)
    log = server.log()
    assert "/api/v1/prompts?[redacted]" in log  # the access log is on, and says a query string was there
    assert account.key not in log
    assert account.key[4:20] not in log


@asynccontextmanager
async def _app(database_url: str, **overrides: object) -> AsyncIterator[FastAPI]:
    """An in-process app with its lifespan running (for counting the queries one process makes)."""
    settings = ApiSettings(database_url=database_url, environment="test", auto_migrate=False, **overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_unknown_and_revoked_keys_are_refused_from_memory(database_url: str) -> None:
    async with _app(database_url, revocation_poll_interval=0.9) as app:
        runtime = app.state.runtime
        account = await make_account(runtime.session_factory)
        queries: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            # The verifier's lookup by digest; not the key policy sweep, which also joins api_keys and tenants
            # (its expiry gauge query) and runs in the background, once at start-up.
            if "api_keys.key_hash =" in statement and "JOIN" in statement.upper():
                queries.append(statement)

        event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
        # A well-formed key with a valid checksum that no row has: it needs one lookup. (A key whose checksum
        # fails needs none at all: tests/security/test_key_checksum.py.)
        unknown = "Bearer " + generate_key()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for _ in range(20):
                response = await client.get("/api/v1/prompts", headers={"Authorization": unknown})
                assert "Unknown API key" in _error(response, 401, "invalid_api_key")
            assert len(queries) == 1, "each unknown key is looked up once, then refused from memory"
            await client.delete(f"/api/v1/api-keys/{account.key_id}", headers=account.headers)
            queries.clear()
            for _ in range(20):
                response = await client.get("/api/v1/prompts", headers=account.headers)
                assert "revoked" in _error(response, 401, "invalid_api_key")
            assert len(queries) <= 1
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)


async def test_an_address_that_keeps_failing_gets_429(database_url: str) -> None:
    async with _app(database_url, auth_failure_limit=5, auth_failure_window=60) as app:
        account = await make_account(app.state.runtime.session_factory)
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 1)), base_url="http://t"
            ) as bad,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("198.51.100.1", 1)), base_url="http://t"
            ) as good,
        ):
            for _ in range(5):
                wrong = {"Authorization": "Bearer vib_" + secrets.token_hex(32)}
                assert (await bad.get("/api/v1/prompts", headers=wrong)).status_code == 401
            refused = await bad.get("/mcp/v1/common", headers={"Authorization": "Bearer vib_" + secrets.token_hex(32)})
            assert "invalid API keys from this address" in _error(refused, 429, "rate_limited")
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            # Even a valid key from that address waits; other addresses are unaffected.
            assert (await bad.get("/api/v1/prompts", headers=account.headers)).status_code == 429
            assert (await good.get("/api/v1/prompts", headers=account.headers)).status_code == 200
