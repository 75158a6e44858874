"""Settings → API Keys: a key's permissions from the create form (presets, the custom grid, networks, expiry), the
list's Scopes / Networks / Expires columns, and the banner for keys that expire within seven days.

Each created key is then used over REST in-process, so "read-only" is checked where it matters: a write is refused
with 403 insufficient_scope. The dashboard client's address is in 10.0.0.0/8 (see ``conftest.client``).
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, sign_in
from helpers.api_errors import assert_error
from helpers.factories import TEST_ACTOR
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants.models import Tenant

KEY_RE = re.compile(r'value="(vib_[0-9a-f]{64})"')


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _post_create(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    page = await client.get("/settings/api-keys")
    # The form preselects no permissions: a test names them (Full access unless it says otherwise).
    return await client.post("/settings/api-keys", data={"csrf_token": csrf_of(page.text), "access": "full", **fields})


async def _create(client: httpx.AsyncClient, **fields: Any) -> tuple[str, httpx.Response]:
    """Create through the form; returns the plaintext and the one-time page."""
    posted = await _post_create(client, **fields)
    assert posted.status_code == 303, posted.text
    shown = await client.get(posted.headers["location"])
    assert shown.status_code == 200, shown.text
    match = KEY_RE.search(shown.text)
    assert match
    return match.group(1), shown


async def _stored(factory: async_sessionmaker[AsyncSession], person: Person, name: str) -> ApiKey:
    async with factory() as session:
        found = [k for k in await keys.list_keys(session, tenant_id=person.account.tenant.id) if k.name == name]
    assert len(found) == 1, found
    return found[0]


async def _names(factory: async_sessionmaker[AsyncSession], person: Person) -> list[str]:
    async with factory() as session:
        return [k.name for k in await keys.list_keys(session, tenant_id=person.account.tenant.id)]


def _row(listing: str, name: str) -> str:
    """The list's table row for the key called ``name``."""
    for row in re.findall(r"<tr data-key-id=.*?</tr>", listing, flags=re.S):
        if f">{name}</a>" in row:
            return str(row)
    raise AssertionError(f"no row for {name!r}")


async def _set_policy(factory: async_sessionmaker[AsyncSession], person: Person, days: int | None) -> None:
    async with session_scope(factory) as session:
        tenant = await session.get(Tenant, person.account.tenant.id)
        assert tenant is not None
        tenant.max_key_lifetime_days = days


async def test_a_read_only_key_with_a_network_reads_and_is_refused_a_write(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    key, shown = await _create(client, name="reader", access="read", allowed_cidrs="10.0.0.0/8\n2001:db8::/32")
    facts = shown.text.split('data-testid="new-key-permissions"', 1)[1]
    assert "Read-only" in facts and "<code>10.0.0.0/8</code>, <code>2001:db8::/32</code>" in facts
    stored = await _stored(session_factory, person, "reader")
    assert stored.scopes == ["read"] and stored.allowed_cidrs == ["10.0.0.0/8", "2001:db8::/32"]
    assert stored.expires_at is None and stored.source == "dashboard"
    assert (await client.get("/api/v1/api-keys", headers=_bearer(key))).status_code == 200
    refused = await client.post("/api/v1/api-keys", json={"name": "more"}, headers=_bearer(key))
    assert "keys:write" in assert_error(refused, 403, "insufficient_scope")["message"]
    row = _row((await client.get("/settings/api-keys")).text, "reader")
    assert '<span class="badge badge-scope">Read-only</span>' in row
    assert "<code>10.0.0.0/8</code>" in row and 'data-testid="key-expires"><span class="muted">never</span>' in row


async def test_a_key_fenced_to_another_network_is_refused_from_here(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    key, _ = await _create(client, name="fenced", access="read", allowed_cidrs="203.0.113.0/24, 198.51.100.0/24")
    assert_error(await client.get("/api/v1/prompts", headers=_bearer(key)), 403, "ip_not_allowed")


async def test_a_custom_key_gets_only_what_was_checked_and_write_includes_read(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    key, _ = await _create(client, name="custom", access="custom", scope=["memories:write", "keys:write"])
    stored = await _stored(session_factory, person, "custom")
    assert stored.scopes == ["memories:write", "keys:write"]  # what was checked, nothing added
    assert (await client.get("/api/v1/api-keys", headers=_bearer(key))).status_code == 200  # keys:read via write
    for path, scope in (("/api/v1/account", "account:read"), ("/api/v1/audit-events", "audit:read")):
        refused = await client.get(path, headers=_bearer(key))
        assert_error(refused, 403, "insufficient_scope")
        assert f'scope="{scope}"' in refused.headers["www-authenticate"]
    row = _row((await client.get("/settings/api-keys")).text, "custom")
    assert ">memories:write</span>" in row and ">keys:write</span>" in row and "Full access" not in row
    assert 'data-testid="key-networks"' not in row  # any network: the list says nothing


async def test_no_permissions_are_preselected_full_access_when_chosen_and_a_preset_ignores_the_grid(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    assert 'name="access"' in page.text and re.search(r'name="access"[^>]* checked', page.text) is None
    assert page.text.index('id="access-read"') < page.text.index('id="access-full"')  # Read-only comes first
    refused = await _post_create(client, name="undecided", access="")
    assert refused.status_code == 422 and "Choose what the key may do" in refused.text
    assert "undecided" not in await _names(session_factory, person)
    key, shown = await _create(client, name="everything", access="full")
    assert "Full access" in shown.text
    assert (await _stored(session_factory, person, "everything")).scopes == ["*"]
    assert (await client.post("/api/v1/api-keys", json={"name": "child"}, headers=_bearer(key))).status_code == 201
    # Boxes checked under a preset (no JavaScript to switch to Custom) do not change the preset's meaning.
    await _create(client, name="preset wins", access="read", scope=["memories:write"])
    assert (await _stored(session_factory, person, "preset wins")).scopes == ["read"]
    row = _row((await client.get("/settings/api-keys")).text, "everything")
    assert '<span class="badge badge-scope badge-full">Full access</span>' in row


async def test_an_expiry_in_days(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    before = utcnow()
    await _create(client, name="ten days", expires_in_days="10")
    stored = await _stored(session_factory, person, "ten days")
    assert stored.expires_at is not None
    assert before + timedelta(days=10) <= stored.expires_at <= utcnow() + timedelta(days=10)
    row = _row((await client.get("/settings/api-keys")).text, "ten days")
    assert stored.expires_at.strftime("%Y-%m-%d %H:%M UTC") in row


BAD_INPUTS = [
    pytest.param({"access": "custom"}, "scopes", "Custom access needs at least one permission", id="custom-none"),
    pytest.param(
        {"access": "custom", "scope": ["prompts:admin"]}, "scopes", "unknown scope 'prompts:admin'", id="scope"
    ),
    pytest.param(
        {"access": "admin"}, "scopes", "Choose what the key may do: Read-only, Full access or Custom", id="preset"
    ),
    pytest.param({"allowed_cidrs": "nowhere"}, "allowed_cidrs", "'nowhere' is not an IPv4 or IPv6 CIDR", id="cidr"),
    pytest.param(
        {"allowed_cidrs": "10.0.0.0/8\n10.0.0.1/8"}, "allowed_cidrs", "did you mean 10.0.0.0/8?", id="host-bits"
    ),
    pytest.param({"allowed_cidrs": "fe80::1%eth0/64"}, "allowed_cidrs", "IPv6 zones", id="zone"),
    pytest.param({"allowed_cidrs": "10.0.0.0/8, 10.0.0.0/8"}, "allowed_cidrs", "listed twice", id="twice"),
    pytest.param(
        {"allowed_cidrs": ",".join(f"10.0.{i}.0/24" for i in range(65))}, "allowed_cidrs", "At most 64", id="many"
    ),
    pytest.param({"expires_in_days": "0"}, "expires_in_days", "at least 1 day", id="zero-days"),
    pytest.param({"expires_in_days": "-5"}, "expires_in_days", "at least 1 day", id="negative-days"),
    pytest.param({"expires_in_days": "soon"}, "expires_in_days", "a whole number of days", id="not-a-number"),
    pytest.param({"expires_in_days": "1.5"}, "expires_in_days", "a whole number of days", id="fraction"),
    pytest.param({"expires_in_days": "3651"}, "expires_in_days", "at most 3650 days", id="too-far"),
]


@pytest.mark.parametrize(("fields", "field", "message"), BAD_INPUTS)
async def test_a_bad_input_is_a_form_error_and_nothing_is_created(
    client: httpx.AsyncClient,
    person: Person,
    session_factory: async_sessionmaker[AsyncSession],
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    await sign_in(client, person)
    before = await _names(session_factory, person)
    data = {"name": "kept name", "description": "kept notes", **fields}
    response = await _post_create(client, **data)
    assert response.status_code == 422, response.text
    assert await _names(session_factory, person) == before
    error = re.search(rf'<p class="field-error" id="e-{field}">(.*?)</p>', response.text, flags=re.S)
    assert error and message in html.unescape(error.group(1)), response.text
    assert '<details class="create" open>' in response.text
    # Every input is kept as typed.
    assert 'value="kept name"' in response.text and ">kept notes</textarea>" in response.text
    if "allowed_cidrs" in fields:
        assert f">{html.escape(fields['allowed_cidrs'], quote=False)}</textarea>" in response.text
    if "expires_in_days" in fields:
        assert f'value="{fields["expires_in_days"]}"' in response.text
    if fields.get("access") in ("custom", "read", "full"):
        assert f'value="{fields["access"]}" id="access-{fields["access"]}" checked' in response.text


async def test_checked_boxes_are_kept_when_another_input_is_wrong(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    response = await _post_create(
        client, name="", access="custom", scope=["prompts:read", "audit:read"], expires_in_days="0"
    )
    assert response.status_code == 422
    # Both problems at once, so one round trip fixes them.
    assert 'id="e-name"' in response.text and 'id="e-expires_in_days"' in response.text
    assert 'value="custom" id="access-custom" checked' in response.text
    for scope in ("prompts-read", "audit-read"):
        assert f'id="scope-{scope}" checked' in response.text
    assert 'id="scope-prompts-write" checked' not in response.text


async def test_the_account_maximum_lifetime(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    assert "at most" not in (await client.get("/settings/api-keys")).text  # no policy, no hint
    await _set_policy(session_factory, person, 30)
    page = await client.get("/settings/api-keys")
    assert "Keys expire after 30 days at most" in page.text
    before = await _names(session_factory, person)
    refused = await _post_create(client, name="too long", expires_in_days="31")
    assert refused.status_code == 422
    error = re.search(r'id="e-expires_in_days">(.*?)</p>', refused.text, flags=re.S)
    assert error and "Keys expire after 30 days at most (this account's policy)." in html.unescape(error.group(1))
    assert 'value="31"' in refused.text and 'value="too long"' in refused.text
    assert await _names(session_factory, person) == before
    await _create(client, name="at the limit", expires_in_days="30")
    await _create(client, name="by default")
    for name in ("at the limit", "by default"):
        expires_at = (await _stored(session_factory, person, name)).expires_at
        assert expires_at is not None and expires_at <= utcnow() + timedelta(days=30)
        assert expires_at > utcnow() + timedelta(days=29, hours=23)


async def test_rotation_keeps_the_permissions(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    await _create(client, name="rotated reader", access="read", allowed_cidrs="10.0.0.0/8")
    old = await _stored(session_factory, person, "rotated reader")
    detail = await client.get(f"/settings/api-keys/{old.id}")
    assert "Read-only" in detail.text and "<code>10.0.0.0/8</code>" in detail.text
    posted = await client.post(
        f"/settings/api-keys/{old.id}/rotate", data={"grace_period": "0", "csrf_token": csrf_of(detail.text)}
    )
    assert posted.status_code == 303
    shown = await client.get(posted.headers["location"])
    new = KEY_RE.search(shown.text)
    assert new
    assert_error(await client.post("/api/v1/api-keys", json={"name": "x"}, headers=_bearer(new.group(1))), 403)
    async with session_factory() as session:
        replaced = await keys.get_key(session, key_id=old.id)
        assert replaced.replaced_by_id
        successor = await keys.get_key(session, key_id=replaced.replaced_by_id)
    assert successor.scopes == ["read"] and successor.allowed_cidrs == ["10.0.0.0/8"]


async def test_creating_without_csrf_creates_nothing(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    before = await _names(session_factory, person)
    response = await client.post(
        "/settings/api-keys", data={"name": "forged", "access": "custom", "scope": "keys:write"}
    )
    assert response.status_code == 403
    assert await _names(session_factory, person) == before


async def _key_expiring(
    factory: async_sessionmaker[AsyncSession], person: Person, name: str, left: timedelta, *, revoked: bool = False
) -> None:
    """A key of ``person``'s account whose expiry is ``left`` from now (negative: already expired)."""
    async with session_scope(factory) as session:
        new = await keys.create_key(
            session,
            tenant_id=person.account.tenant.id,
            name=name,
            actor=TEST_ACTOR,
            permissions=keys.KeyPermissions(expires_at=utcnow() + timedelta(days=1)),
        )
        new.record.expires_at = utcnow() + left  # the service refuses a past expiry; a key can still reach one
        if revoked:
            await keys.revoke_key(session, key=new.record, actor=TEST_ACTOR)


def _banner(page: str) -> str | None:
    match = re.search(r'<p class="banner warning" role="status" data-testid="expiring-keys">(.*?)</p>', page, re.S)
    return " ".join(match.group(1).split()) if match else None


async def test_the_banner_names_keys_expiring_within_seven_days(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    for path in ("/settings/api-keys", "/"):
        assert _banner((await client.get(path)).text) is None  # the account's one key never expires
    await _key_expiring(session_factory, person, "in a month", timedelta(days=30))
    await _key_expiring(session_factory, person, "gone", -timedelta(hours=1))
    await _key_expiring(session_factory, person, "revoked soon", timedelta(days=2), revoked=True)
    for path in ("/settings/api-keys", "/"):
        assert _banner((await client.get(path)).text) is None
    await _key_expiring(session_factory, person, "laptop", timedelta(days=3))
    await _key_expiring(session_factory, person, "ci", timedelta(hours=5))
    for path in ("/settings/api-keys", "/"):
        banner = _banner((await client.get(path)).text)
        assert banner is not None, path
        assert banner.startswith("<strong>2 keys expire within 7 days:</strong>")
        assert ">ci</a> (in 5 hours), <a" in banner and ">laptop</a> (in 3 days)." in banner  # soonest first
        assert 'href="/settings/api-keys"' in banner
        for name in ("in a month", "gone", "revoked soon"):
            assert f">{name}<" not in banner


async def test_the_banner_for_one_key(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    await _key_expiring(session_factory, person, "tomorrow", timedelta(days=1))
    banner = _banner((await client.get("/settings/api-keys")).text)
    assert banner is not None
    assert banner.startswith("<strong>1 key expires within 7 days:</strong>") and "(in 1 day)" in banner
