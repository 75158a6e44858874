"""Settings → Audit log (issue #16): the signed-in user's account only, filterable by key and action."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, make_person, sign_in
from vibexp.api.dashboard.routes.audit import MAX_LINES, VALUE_CHARS, describe_changes


async def test_audit_log_lists_filters_and_refuses_bad_filters(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    stranger = await make_person(session_factory)
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    made = await client.post(
        "/settings/api-keys", data={"name": "Audited key", "access": "full", "csrf_token": csrf_of(page.text)}
    )
    assert made.status_code in (200, 303), made.text
    key_id = person.account.key_id
    detail = await client.get(f"/settings/api-keys/{key_id}")
    revoked = await client.post(f"/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf_of(detail.text)})
    assert revoked.status_code == 303

    log = await client.get("/settings/audit-log")
    assert log.status_code == 200
    html = log.text
    for expected in ("key.revoked", "key.created", "user.signed_in", "Audited key", person.email):
        assert expected in html, expected
    assert stranger.email not in html and 'aria-current="page"' in html

    only_revocations = (await client.get("/settings/audit-log", params={"action": "key.revoked"})).text
    assert "key.revoked" in only_revocations and "<code>key.created</code>" not in only_revocations
    on_key = (await client.get("/settings/audit-log", params={"key": key_id})).text
    assert "<code>key.revoked</code>" in on_key and "<code>user.signed_in</code>" not in on_key
    nothing = await client.get("/settings/audit-log", params={"action": "key.leaked"})
    assert nothing.status_code == 200 and "No events match these filters" in nothing.text

    for params in ({"action": "drop table"}, {"cursor": "%%%"}):
        refused = await client.get("/settings/audit-log", params=params)
        assert refused.status_code == 422, params


async def test_audit_log_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/settings/audit-log")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_describe_changes() -> None:
    tenant = {
        "changes": {"tier": {"from": "free", "to": "pro"}, "alert_webhook_url": {"from": None, "to": "https://h"}}
    }
    assert describe_changes(tenant) == ["tier: free → pro", "alert_webhook_url: none → https://h"]
    permissions = {
        "scopes": ["prompts:read"],
        "allowed_cidrs": [],
        "previous": {"scopes": ["prompts:read", "prompts:write"], "allowed_cidrs": []},
    }
    assert describe_changes(permissions) == ["scopes: prompts:read, prompts:write → prompts:read"]
    assert describe_changes({"label": "production", "from_version": 1, "to_version": 3}) == ["production: v1 → v3"]
    assert describe_changes({"label": "production", "from_version": 2}) == ["production: v2 → removed"]
    created = {"prefix": "vib_1234abcd", "source": "dashboard", "expires_at": None, "scopes": ["memories:read"]}
    assert describe_changes(created) == ["prefix: vib_1234abcd", "scopes: memories:read", "source: dashboard"]
    assert describe_changes({}) == [] and describe_changes(None) == []
    long = describe_changes({"note": "x" * 500, **{f"f{i}": i + 1 for i in range(20)}})
    assert len(long) == MAX_LINES and all(len(line) < VALUE_CHARS + 20 for line in long)


async def test_audit_rows_show_what_changed(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    made = await client.post(
        "/settings/api-keys", data={"name": "Changes key", "csrf_token": csrf_of(page.text), "access": "read"}
    )
    assert made.status_code in (200, 303), made.text
    html = (await client.get("/settings/audit-log", params={"action": "key.created"})).text
    cell = html.split('data-testid="changes">', 1)[1].split("</td>", 1)[0]
    assert '<span class="change">prefix: vib_' in cell and '<span class="change">source: dashboard</span>' in cell
