"""Every way a key can be wrong gets 401 ``invalid_api_key`` with ``WWW-Authenticate: Bearer`` and a message that
names the problem (the guide's troubleshooting section: spaces, quotes, typos, revoked); a suspended account 403."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import TEST_ACTOR, Account
from vibexp.core.account import update_tenant
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantUpdate

URL = "/api/v1/prompts"


async def _refused(client: httpx.AsyncClient, authorization: str | None, *, expect: str) -> str:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get(URL, headers=headers)
    error = assert_error(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    assert expect.lower() in error["message"].lower(), error["message"]
    # A refused request is not counted against anyone's limit and says nothing about limits.
    assert "x-ratelimit-limit" not in response.headers
    return error["message"]


async def test_no_header(client: httpx.AsyncClient) -> None:
    await _refused(client, None, expect="missing api key")


async def test_empty_header(client: httpx.AsyncClient) -> None:
    await _refused(client, "", expect="missing api key")


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer    "])
async def test_bearer_with_nothing_after_it(client: httpx.AsyncClient, value: str) -> None:
    await _refused(client, value, expect="No API key after 'Bearer'")


@pytest.mark.parametrize("scheme", ["Basic", "Token", "ApiKey"])
async def test_wrong_scheme(client: httpx.AsyncClient, account: Account, scheme: str) -> None:
    await _refused(client, f"{scheme} {account.key}", expect="Bearer scheme")


async def test_key_without_scheme(client: httpx.AsyncClient, account: Account) -> None:
    await _refused(client, account.key, expect="Bearer scheme")


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.get(URL, headers={"Authorization": f"bearer {account.key}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("prefix", ["sk_", "VIB_", "vib-", "vibe_", ""])
async def test_wrong_prefix(client: httpx.AsyncClient, prefix: str) -> None:
    await _refused(client, f"Bearer {prefix}{secrets.token_hex(32)}", expect="keys start with 'vib_'")


@pytest.mark.parametrize("length", [0, 1, 63, 65, 128])
async def test_wrong_length(client: httpx.AsyncClient, account: Account, length: int) -> None:
    body = (account.key[4:] * 2)[:length]
    message = await _refused(client, f"Bearer vib_{body}", expect="followed by 64 characters")
    assert f"this one has {length}" in message


async def test_non_hex(client: httpx.AsyncClient) -> None:
    await _refused(client, "Bearer vib_" + "g" * 64, expect="lowercase hexadecimal")


async def test_uppercase_hex(client: httpx.AsyncClient, account: Account) -> None:
    await _refused(client, "Bearer vib_" + account.key[4:].upper(), expect="lowercase hexadecimal")


@pytest.mark.parametrize("quote", ['"', "'", "`"])
async def test_key_wrapped_in_quotes(client: httpx.AsyncClient, account: Account, quote: str) -> None:
    await _refused(client, f"Bearer {quote}{account.key}{quote}", expect="wrapped in quotes")


@pytest.mark.parametrize("template", ["Bearer  {key}", "Bearer {key} ", "Bearer \t{key}", "Bearer {key}\t"])
async def test_key_with_surrounding_spaces(client: httpx.AsyncClient, account: Account, template: str) -> None:
    await _refused(client, template.format(key=account.key), expect="extra spaces")


async def test_unknown_key(client: httpx.AsyncClient) -> None:
    await _refused(client, f"Bearer vib_{secrets.token_hex(32)}", expect="Unknown API key")


async def test_revoked_key(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get(URL, headers=account.headers)).status_code == 200  # cached as valid first
    async with session_scope(session_factory) as session:
        await keys.revoke_key(session, actor=TEST_ACTOR, key=await keys.get_key(session, key_id=account.key_id))
    await _refused(client, f"Bearer {account.key}", expect="revoked")


async def test_expired_key(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_scope(session_factory) as session:
        new = await keys.create_key(
            session,
            actor=TEST_ACTOR,
            tenant_id=account.tenant.id,
            name="short-lived",
            permissions=keys.KeyPermissions(expires_at=utcnow() + timedelta(seconds=1)),
        )
    headers = {"Authorization": f"Bearer {new.plaintext}"}
    assert (await client.get(URL, headers=headers)).status_code == 200  # valid, and now in the cache
    await asyncio.sleep(1.1)
    await _refused(client, headers["Authorization"], expect="expired")


async def test_suspended_tenant_gets_403_then_access_again_when_reinstated(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get(URL, headers=account.headers)).status_code == 200
    async with session_scope(session_factory) as session:
        tenant = await tenants.get_tenant(session, tenant_id=account.tenant.id)
        await update_tenant(session, actor=TEST_ACTOR, tenant=tenant, data=TenantUpdate(suspended=True))
    response = await client.get(URL, headers=account.headers)
    error = assert_error(response, 403, "account_suspended")
    assert "suspended" in error["message"]

    async with session_scope(session_factory) as session:
        tenant = await tenants.get_tenant(session, tenant_id=account.tenant.id)
        await update_tenant(session, actor=TEST_ACTOR, tenant=tenant, data=TenantUpdate(suspended=False))
    assert (await client.get(URL, headers=account.headers)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/memories"),
        ("POST", "/api/v1/artifacts"),
        ("GET", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/prompts/x"),
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/no-such-route"),
    ],
)
async def test_every_api_route_needs_a_key(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert_error(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
