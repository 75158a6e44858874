"""Settings → Alerts settings: an owner or admin sets the webhook (the secret write-only), working hours and the
kinds that revoke at once; every bad value is listed at once and nothing is stored; a member gets the 403 page and
no navigation link; a key, whatever its scopes, cannot change them through the use case."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import PASSWORD, Person, csrf_of, sign_in
from vibexp.core import account
from vibexp.core.access import Caller, CredentialKind, Role
from vibexp.core.db import session_scope
from vibexp.core.errors import InsufficientScope, InvalidInput
from vibexp.core.keys.verifier import KeyVerifier
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate
from vibexp.core.users.service import create_user

PAGE = "/settings/alerts"
SECRET = "s3cret-" + "x" * 20


async def _tenant(factory: async_sessionmaker[AsyncSession], person: Person) -> Tenant:
    async with session_scope(factory) as session:
        return await tenants.get_tenant(session, tenant_id=person.account.tenant.id)


async def _form(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    token = csrf_of((await client.get(PAGE)).text)
    return await client.post(PAGE, data={"csrf_token": token, **fields})  # type: ignore[dict-item]


async def test_owner_sets_clears_and_the_secret_is_never_shown(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert 'href="/settings/alerts" aria-current="page"' in page.text  # in the Settings navigation
    assert "No secret is set" in page.text

    saved = await _form(
        client,
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret=SECRET,
        working_hours="Mon-Fri 08:00-19:00 Europe/Berlin",
        auto_revoke_on=["key_leaked", "retired_key_used"],
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{PAGE}?saved=1"
    tenant = await _tenant(session_factory, person)
    assert tenant.alert_webhook_url == "http://127.0.0.1:9/hook"
    assert tenant.working_hours == "Mon-Fri 08:00-19:00 Europe/Berlin"
    assert sorted(tenant.auto_revoke_on or []) == ["key_leaked", "retired_key_used"]
    shown = (await client.get(f"{PAGE}?saved=1")).text
    assert "Alerts settings saved." in shown and "A secret is set" in shown
    assert SECRET not in shown and 'value="http://127.0.0.1:9/hook"' in shown
    assert shown.count("checked") == 2

    # An empty secret keeps the one set; the URL may change alone.
    kept = await _form(client, webhook_url="http://127.0.0.1:10/hook", working_hours="", auto_revoke_on=[])
    assert kept.status_code == 303
    tenant = await _tenant(session_factory, person)
    assert tenant.alert_webhook_url == "http://127.0.0.1:10/hook" and tenant.alert_webhook_secret is not None
    assert tenant.working_hours is None and not tenant.auto_revoke_on

    # An empty URL removes the webhook and its secret.
    cleared = await _form(client, webhook_url="", webhook_secret="")
    assert cleared.status_code == 303
    tenant = await _tenant(session_factory, person)
    assert tenant.alert_webhook_url is None and tenant.alert_webhook_secret is None

    params = {"action": "tenant.updated"}
    audit = await client.get("/api/v1/audit-events", params=params, headers=person.account.headers)
    assert audit.status_code == 200, audit.text
    assert SECRET not in audit.text and len(audit.json()["items"]) == 3


@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        (
            {"webhook_url": "ftp://example.com/x", "working_hours": "whenever", "auto_revoke_on": ["failed_auth"]},
            ["must start with http:// or https://", "working hours:", "failed_auth"],
        ),
        ({"webhook_url": "http://127.0.0.1:9/hook"}, ["needs a webhook secret"]),
        ({"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": "short"}, ["webhook secret: 16 to"]),
        ({"auto_revoke_on": ["no_such_kind"]}, ["unknown alert kind"]),
    ],
)
async def test_bad_values_are_all_listed_and_nothing_is_stored(
    client: httpx.AsyncClient,
    person: Person,
    session_factory: async_sessionmaker[AsyncSession],
    fields: dict[str, object],
    messages: list[str],
) -> None:
    await sign_in(client, person)
    refused = await _form(client, **fields)
    assert refused.status_code == 422
    assert f"{len(messages)} thing{'s' if len(messages) != 1 else ''} to fix" in refused.text
    for message in messages:
        assert message in refused.text
    assert "short" not in refused.text.split('id="f-webhook_secret"')[1][:200]  # the secret is not typed back
    if "webhook_url" in fields:
        assert f'value="{fields["webhook_url"]}"' in refused.text  # what was typed stays
    tenant = await _tenant(session_factory, person)
    assert tenant.alert_webhook_url is None and tenant.working_hours is None and not tenant.auto_revoke_on


async def test_a_member_gets_the_403_page_and_no_link(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    email = f"{secrets.token_hex(4)}@example.com"
    async with session_scope(session_factory) as session:
        await create_user(session, tenant_id=person.account.tenant.id, email=email, password=PASSWORD, role=Role.member)
    await sign_in(client, Person(email=email, password=PASSWORD, account=person.account))
    page = await client.get(PAGE)
    assert page.status_code == 403 and "alerts:write" in page.text
    assert 'href="/settings/alerts"' not in (await client.get("/settings/account")).text
    token = csrf_of((await client.get("/settings/account")).text)
    posted = await client.post(PAGE, data={"csrf_token": token, "webhook_url": ""})
    assert posted.status_code == 403
    no_csrf = await client.post(PAGE, data={"webhook_url": ""})
    assert no_csrf.status_code == 403


async def test_a_key_cannot_change_alert_settings_whatever_its_scopes(
    person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The account's service key holds ``*``: still refused, and so would a grant be."""
    principal = await KeyVerifier(session_factory).verify(f"Bearer {person.account.key}")
    caller = principal.caller(client_ip="203.0.113.1", user_agent=None)
    assert caller.credential is CredentialKind.api_key and "alerts:write" in caller.granted
    async with session_scope(session_factory) as session:
        with pytest.raises(InsufficientScope, match="dashboard or with the CLI"):
            await account.update_alert_settings(session, caller=caller, data=TenantUpdate(working_hours=None))
    cli = Caller.cli(person.account.tenant.id)
    async with session_scope(session_factory) as session:
        with pytest.raises(InvalidInput, match="not alert settings: rate_limit_per_hour"):
            await account.update_alert_settings(session, caller=cli, data=TenantUpdate(rate_limit_per_hour=5))
