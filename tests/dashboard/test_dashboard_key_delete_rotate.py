"""Settings → API Keys over HTTP, issues 25 and 26: delete a revoked key (confirmed, without JavaScript), the rotate
form's expiry (the old key's by default, shown), the result page stating it, and the expiry banner that lists an old
key in its grace period as rotating instead of warning about it."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, make_person, sign_in
from dashboard.test_dashboard_keys import KEY_RE, create_via_dashboard, shown_once
from helpers.factories import TEST_ACTOR
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants.models import Tenant


async def _row(factory: async_sessionmaker[AsyncSession], key_id: str) -> ApiKey:
    async with session_scope(factory) as session:
        key = await session.get(ApiKey, key_id)
        assert key is not None
        return key


async def _revoke(client: httpx.AsyncClient, key_id: str) -> None:
    confirm = await client.get(f"/settings/api-keys/{key_id}/revoke")
    posted = await client.post(f"/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf_of(confirm.text)})
    assert posted.status_code == 303


async def test_a_revoked_key_is_deleted_from_the_list_after_confirming(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    key, key_id = await create_via_dashboard(client, "old laptop")
    listing = await client.get("/settings/api-keys")
    assert f"/settings/api-keys/{key_id}/delete" not in listing.text  # active: Revoke, no Delete
    assert (await client.get(f"/settings/api-keys/{key_id}/delete", follow_redirects=False)).status_code == 303

    await _revoke(client, key_id)
    listing = await client.get("/settings/api-keys")
    assert f'href="/settings/api-keys/{key_id}/delete"' in listing.text
    confirm = await client.get(f"/settings/api-keys/{key_id}/delete")
    assert confirm.status_code == 200 and "Delete “old laptop”?" in confirm.text
    assert "usage and the audit log" in confirm.text
    posted = await client.post(f"/settings/api-keys/{key_id}/delete", data={"csrf_token": csrf_of(confirm.text)})
    assert posted.status_code == 303 and posted.headers["location"] == f"/settings/api-keys?deleted={key_id}"
    after = await client.get(posted.headers["location"])
    assert "Deleted “old laptop”" in after.text and f'data-key-id="{key_id}"' not in after.text
    row = await _row(session_factory, key_id)
    assert row.deleted_at is not None and row.status == "revoked"
    # Its page still opens from the audit trail, with its history and no actions; the key still works nowhere.
    page = await client.get(f"/settings/api-keys/{key_id}")
    assert page.status_code == 200 and "Deleted" in page.text and "/delete" not in page.text
    audit = await client.get("/settings/audit-log")
    assert "key.deleted" in audit.text
    assert (await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}"})).status_code == 401
    # Deleting again: not found.
    again = await client.post(f"/settings/api-keys/{key_id}/delete", data={"csrf_token": csrf_of(confirm.text)})
    assert again.status_code == 404


async def test_an_active_key_is_not_deleted(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    key, key_id = await create_via_dashboard(client, "still in use")
    page = await client.get("/settings/api-keys")
    refused = await client.post(f"/settings/api-keys/{key_id}/delete", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 422 and "revoke it first" in refused.text
    assert (await _row(session_factory, key_id)).deleted_at is None
    assert (await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}"})).status_code == 200
    # Without the form's CSRF token nothing happens either.
    await _revoke(client, key_id)
    forged = await client.post(f"/settings/api-keys/{key_id}/delete", data={})
    assert forged.status_code == 403 and (await _row(session_factory, key_id)).deleted_at is None


async def test_another_accounts_key_cannot_be_deleted(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    stranger = await make_person(session_factory)
    async with session_scope(session_factory) as session:
        theirs = await keys.get_key(session, key_id=stranger.account.key_id)
        await keys.revoke_key(session, key=theirs, actor=TEST_ACTOR)
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    assert (await client.get(f"/settings/api-keys/{stranger.account.key_id}/delete")).status_code == 404
    posted = await client.post(
        f"/settings/api-keys/{stranger.account.key_id}/delete", data={"csrf_token": csrf_of(page.text)}
    )
    assert posted.status_code == 404 and (await _row(session_factory, stranger.account.key_id)).deleted_at is None


async def _create_expiring(client: httpx.AsyncClient, name: str, days: int) -> str:
    page = await client.get("/settings/api-keys")
    posted = await client.post(
        "/settings/api-keys",
        data={"name": name, "access": "full", "expires_in_days": str(days), "csrf_token": csrf_of(page.text)},
    )
    shown = await shown_once(posted, client)
    link = re.search(r'href="/settings/api-keys/([^"/]+)" data-key-link', shown.text)
    assert link
    return link.group(1)


async def test_rotation_keeps_the_expiry_the_form_shows_and_may_change_it(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    old_id = await _create_expiring(client, "weekly", 7)
    old = await _row(session_factory, old_id)
    assert old.expires_at is not None
    detail = await client.get(f"/settings/api-keys/{old_id}")
    shown = re.search(r'data-testid="rotation-expiry">(.*?)</p>', detail.text, re.S)
    assert shown and "like the old key, the new key expires" in shown.group(1)
    assert old.expires_at.strftime("%Y-%m-%d %H:%M UTC") in shown.group(1)
    token = csrf_of(detail.text)

    rotated = await shown_once(
        await client.post(f"/settings/api-keys/{old_id}/rotate", data={"grace_period": "0", "csrf_token": token}),
        client,
    )
    assert KEY_RE.search(rotated.text)
    new_id = (await _row(session_factory, old_id)).replaced_by_id
    assert new_id is not None
    successor = await _row(session_factory, new_id)
    assert successor.expires_at == old.expires_at  # before: never
    facts = re.search(r'data-testid="new-key-permissions">(.*?)</dl>', rotated.text, re.S)
    assert facts and "Expires" in facts.group(1) and "never" not in facts.group(1)

    # A bad number of days: the form again, with the message, nothing rotated.
    for typed, message in (("0", "at least 1 day"), ("soon", "whole number of days")):
        bad = await client.post(
            f"/settings/api-keys/{new_id}/rotate", data={"expires_in_days": typed, "csrf_token": token}
        )
        assert bad.status_code == 422 and message in bad.text
        assert (await _row(session_factory, new_id)).replaced_by_id is None
    # Beyond the account's maximum lifetime: refused, nothing rotated.
    async with session_scope(session_factory) as session:
        tenant = await session.get(Tenant, person.account.tenant.id)
        assert tenant is not None
        tenant.max_key_lifetime_days = 30
    too_long = await client.post(
        f"/settings/api-keys/{new_id}/rotate", data={"expires_in_days": "31", "csrf_token": token}
    )
    assert too_long.status_code == 422 and "maximum key lifetime" in too_long.text
    assert (await _row(session_factory, new_id)).replaced_by_id is None
    # Shorter: one day.
    before = utcnow()
    await shown_once(
        await client.post(f"/settings/api-keys/{new_id}/rotate", data={"expires_in_days": "1", "csrf_token": token}),
        client,
    )
    third_id = (await _row(session_factory, new_id)).replaced_by_id
    assert third_id is not None
    third = await _row(session_factory, third_id)
    assert third.expires_at is not None and abs(third.expires_at - (before + timedelta(days=1))) < timedelta(minutes=1)


async def test_an_old_key_in_its_grace_period_is_rotating_not_expiring(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    old_id = await _create_expiring(client, "soon gone", 3)
    listing = await client.get("/settings/api-keys")
    assert 'data-testid="expiring-keys"' in listing.text and "soon gone" in listing.text
    detail = await client.get(f"/settings/api-keys/{old_id}")
    await shown_once(
        await client.post(
            f"/settings/api-keys/{old_id}/rotate", data={"grace_period": "86400", "csrf_token": csrf_of(detail.text)}
        ),
        client,
    )
    old = await _row(session_factory, old_id)
    assert old.replaced_by_id is not None
    new = await _row(session_factory, old.replaced_by_id)
    for path in ("/settings/api-keys", "/"):
        page = await client.get(path)
        expiring = re.search(r'data-testid="expiring-keys">(.*?)</p>', page.text, re.S)
        # The successor keeps the 3-day expiry, so it is the one the banner warns about; the old key is not.
        assert expiring and expiring.group(1).count("soon gone") == 1
        assert f"/settings/api-keys/{new.id}" in expiring.group(
            1
        ) and f"/settings/api-keys/{old_id}" not in expiring.group(1)
        rotating = re.search(r'data-testid="rotating-keys">(.*?)</p>', page.text, re.S)
        assert rotating, path
        assert f"rotating → <code>{new.prefix}…</code>, stops at" in rotating.group(1)
        assert old.prefix in rotating.group(1)
    # Its page says so too, and offers no second rotation; a rotation posted anyway is refused (409).
    page = await client.get(f"/settings/api-keys/{old_id}")
    assert (
        'data-testid="rotating"' in page.text and 'action="/settings/api-keys/' + old_id + '/rotate"' not in page.text
    )
    again = await client.post(f"/settings/api-keys/{old_id}/rotate", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409 and "already rotated" in again.text
