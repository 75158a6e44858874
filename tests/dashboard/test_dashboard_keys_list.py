"""Settings → API Keys (#31): the list's filter, search and relative times, keys in their rotation grace period, the
delete of a revoked key, the create form's presets and its list of every error, the "key created" page's set-ups,
the navigation, Settings → Account, and a signed-in 404 / 405 as a page."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, sign_in
from dashboard.test_dashboard_alerts import badge, make_alert
from dashboard.test_dashboard_keys import KEY_RE, shown_once
from vibexp.api.dashboard.rendering import relative_time
from vibexp.api.dashboard.routes.keys import EXPIRY_PRESETS
from vibexp.core.alerts.models import AlertKind
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey

LIST = "/settings/api-keys"


async def _post(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    page = await client.get(LIST)
    return await client.post(LIST, data={"csrf_token": csrf_of(page.text), **fields})


async def _make(client: httpx.AsyncClient, name: str, **fields: object) -> tuple[str, str]:
    """Creates a key through the form; returns (plaintext, id)."""
    shown = await shown_once(await _post(client, name=name, access=fields.pop("access", "read"), **fields), client)
    key = KEY_RE.search(shown.text)
    key_id = re.search(r'href="/settings/api-keys/([^"/]+)" data-key-link', shown.text)
    assert key and key_id
    return key.group(1), key_id.group(1)


async def _revoke(client: httpx.AsyncClient, key_id: str) -> None:
    confirm = await client.get(f"{LIST}/{key_id}/revoke")
    posted = await client.post(f"{LIST}/{key_id}/revoke", data={"csrf_token": csrf_of(confirm.text)})
    assert posted.status_code == 303


def _names(page: str) -> list[str]:
    """The key names in the list's rows, in order."""
    return re.findall(r'<td data-label="Name" class="name"><a href="[^"]+">([^<]+)</a>', page)


def _row(page: str, name: str) -> str:
    match = re.search(rf"<tr data-key-id=[^>]*>\s*<td[^>]*><a[^>]*>{re.escape(name)}</a>.*?</tr>", page, flags=re.S)
    assert match, name
    return match.group(0)


def _tab_count(page: str, status: str) -> int:
    match = re.search(rf'data-testid="filter-{status}">\w+ <span class="count">(\d+)</span>', page)
    assert match, status
    return int(match.group(1))


async def _stored(factory: async_sessionmaker[AsyncSession], person: Person, name: str) -> ApiKey:
    async with factory() as session:
        found = [k for k in await keys.list_keys(session, tenant_id=person.account.tenant.id) if k.name == name]
    assert len(found) == 1
    return found[0]


async def test_filter_active_revoked_all_and_search_by_name(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    await _make(client, "Work Laptop - Cursor")
    _, ci = await _make(client, "CI runner")
    await _make(client, "Home laptop - Claude Code")
    await _revoke(client, ci)

    everything = await client.get(LIST)  # All by default: nothing hidden
    assert set(_names(everything.text)) == {
        "Work Laptop - Cursor",
        "CI runner",
        "Home laptop - Claude Code",
        "test key",
    }
    assert 'data-testid="filter-all" aria-current' not in everything.text  # links carry aria-current before testid
    assert re.search(r'aria-current="page" data-testid="filter-all"', everything.text)
    assert (_tab_count(everything.text, "active"), _tab_count(everything.text, "revoked")) == (3, 1)
    assert _tab_count(everything.text, "all") == 4

    active = await client.get(LIST, params={"status": "active"})
    assert "CI runner" not in _names(active.text) and len(_names(active.text)) == 3
    revoked = await client.get(LIST, params={"status": "revoked"})
    assert _names(revoked.text) == ["CI runner"]
    assert re.search(r'aria-current="page" data-testid="filter-revoked"', revoked.text)

    laptops = await client.get(LIST, params={"q": "LAPTOP"})  # any case, any part of the name
    assert sorted(_names(laptops.text)) == ["Home laptop - Claude Code", "Work Laptop - Cursor"]
    assert 'value="LAPTOP"' in laptops.text
    assert (_tab_count(laptops.text, "active"), _tab_count(laptops.text, "revoked")) == (2, 0)  # counts follow q
    assert "status=revoked&amp;q=LAPTOP" in laptops.text  # the tabs keep the search
    none = await client.get(LIST, params={"q": "laptop", "status": "revoked"})
    assert _names(none.text) == [] and 'data-testid="no-match"' in none.text
    assert "No revoked keys match “laptop”" in html.unescape(none.text)

    prefix = _row(everything.text, "CI runner")
    shown_prefix = re.search(r"<code>(vib_[0-9a-f]{8})…</code>", prefix)
    assert shown_prefix
    by_prefix = await client.get(LIST, params={"q": shown_prefix.group(1)})
    assert _names(by_prefix.text) == ["CI runner"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"status": "expired"}, "Show Active, Revoked or All keys.", id="status"),
        pytest.param({"q": "x" * 201}, "Search for at most 200 characters of a key", id="search-too-long"),
    ],
)
async def test_a_bad_filter_is_an_error_page(
    client: httpx.AsyncClient, person: Person, params: dict[str, str], message: str
) -> None:
    await sign_in(client, person)
    response = await client.get(LIST, params=params)
    assert response.status_code == 422
    assert "<h1>Invalid request</h1>" in response.text and message in html.unescape(response.text)


async def test_rows_read_on_one_line_with_relative_times_and_manage(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    await _make(client, "Relative", expiry="30")
    row = _row((await client.get(LIST)).text, "Relative")
    assert '<td data-label="Prefix" class="nowrap"><code>vib_' in row
    created = re.search(
        r'<td data-label="Created" class="nowrap"><time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', row
    )
    assert created, row
    at = datetime.fromisoformat(created.group(1))
    assert created.group(2) == at.strftime("%Y-%m-%d %H:%M UTC") and created.group(3) == "just now"
    expires = re.search(r'data-testid="key-expires"><time datetime="[^"]+" title="[^"]+ UTC">([^<]+)</time>', row)
    assert expires and expires.group(1) == "in 4 weeks"
    assert '<td data-label="Last used" class="nowrap"><span class="muted">Never</span>' in row
    assert '>Manage<span class="visually-hidden"> Relative</span>' in row and ">Usage<" not in row


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(seconds=-59), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=3, seconds=10), "3 minutes ago"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(hours=2, minutes=59), "2 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=13), "1 week ago"),
        (timedelta(days=45), "1 month ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(days=2, hours=1), "in 2 days"),
        (-timedelta(minutes=90), "in 1 hour"),
    ],
)
def test_relative_time(delta: timedelta, words: str) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert relative_time(now - delta, now) == words
    assert relative_time((now - delta).replace(tzinfo=None), now) == words  # SQLite may hand back naive UTC


async def test_a_key_in_its_rotation_grace_reads_rotating_to_its_successor(
    client: httpx.AsyncClient, person: Person
) -> None:
    await sign_in(client, person)
    _, old_id = await _make(client, "Old laptop")
    token = csrf_of((await client.get(f"{LIST}/{old_id}")).text)
    rotated = await client.post(f"{LIST}/{old_id}/rotate", data={"grace_period": "86400", "csrf_token": token})
    successor = re.search(r'href="/settings/api-keys/([^"/]+)" data-key-link', (await shown_once(rotated, client)).text)
    assert successor
    page = (await client.get(LIST)).text
    row = re.search(rf'<tr data-key-id="{old_id}">.*?</tr>', page, flags=re.S)  # the successor has the same name
    assert row
    status = re.search(r'data-testid="key-status">(.*?)</td>', row.group(0), flags=re.S)
    assert status
    text = re.sub(r"<[^>]+>", "", status.group(1))
    assert text.startswith("Rotating → Old laptop") and ", stops in 23 hours" in text, text
    assert f'href="/settings/api-keys/{successor.group(1)}"' in status.group(1)


async def test_delete_a_revoked_key_from_the_list(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    _, key_id = await _make(client, "Retired")
    assert "/delete" not in _row((await client.get(LIST)).text, "Retired")  # an active key is revoked first
    await _revoke(client, key_id)
    revoked = (await client.get(LIST, params={"status": "revoked"})).text
    assert f'href="/settings/api-keys/{key_id}/delete">Delete' in _row(revoked, "Retired")
    confirm = await client.get(f"{LIST}/{key_id}/delete")
    deleted = await client.post(f"{LIST}/{key_id}/delete", data={"csrf_token": csrf_of(confirm.text)})
    assert deleted.status_code == 303 and deleted.headers["location"] == f"{LIST}?deleted={key_id}"
    after = await client.get(deleted.headers["location"])
    assert "Deleted “Retired”" in html.unescape(after.text) and "Retired" not in _names(after.text)
    assert _tab_count(after.text, "revoked") == 0
    async with session_factory() as session:
        assert (
            await keys.get_key(session, key_id=key_id, tenant_id=person.account.tenant.id, include_deleted=True)
        ).deleted_at


@pytest.mark.parametrize("preset", ["7", "30", "90"])
async def test_an_expiry_preset_sets_the_expiry(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession], preset: str
) -> None:
    await sign_in(client, person)
    before = utcnow()
    await _make(client, f"expires {preset}", expiry=preset, expires_in_days="")
    expires_at = (await _stored(session_factory, person, f"expires {preset}")).expires_at
    days = timedelta(days=int(preset))
    assert expires_at is not None and before + days <= expires_at <= utcnow() + days


async def test_never_custom_and_the_default_expiry(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    form = (await client.get(LIST)).text
    assert re.search(r'name="expiry" value="90" id="expiry-90" checked', form)  # the guide's 90 days
    assert [v for v in EXPIRY_PRESETS if f'name="expiry" value="{v}"' in form] == ["7", "30", "90", "custom", "never"]
    await _make(client, "forever", expiry="never")
    assert (await _stored(session_factory, person, "forever")).expires_at is None
    await _make(client, "twelve", expiry="custom", expires_in_days="12")
    twelve = (await _stored(session_factory, person, "twelve")).expires_at
    assert twelve is not None and abs(twelve - (utcnow() + timedelta(days=12))) < timedelta(minutes=1)
    # A number typed in the days field means Custom, whichever preset is checked (without JavaScript nothing
    # switches the radio).
    await _make(client, "typed wins", expiry="90", expires_in_days="5")
    five = (await _stored(session_factory, person, "typed wins")).expires_at
    assert five is not None and abs(five - (utcnow() + timedelta(days=5))) < timedelta(minutes=1)


async def test_the_policy_limits_the_presets_and_refuses_never(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_scope(session_factory) as session:
        tenant = await session.merge(person.account.tenant)
        tenant.max_key_lifetime_days = 30
    await sign_in(client, person)
    form = (await client.get(LIST)).text
    assert [v for v in EXPIRY_PRESETS if f'name="expiry" value="{v}"' in form] == ["7", "30", "custom"]
    assert re.search(r'name="expiry" value="30" id="expiry-30" checked', form)  # the longest allowed
    refused = await _post(client, name="forever", access="read", expiry="never")
    assert refused.status_code == 422
    assert "Keys of this account expire after 30 days at most: choose an expiry." in html.unescape(refused.text)
    refused = await _post(client, name="long", access="read", expiry="90")
    assert "Choose when the key expires: 7, 30 days, custom." in html.unescape(refused.text)


async def test_every_error_is_listed_at_once_in_words(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    response = await _post(
        client,
        name=" ",
        description="d" * 2001,
        access="",
        allowed_cidrs="nowhere",
        expiry="custom",
        expires_in_days="",
    )
    assert response.status_code == 422
    summary = re.search(r'data-testid="error-summary">(.*?)</div>', response.text, flags=re.S)
    assert summary, response.text
    assert "5 things to fix before the key is created" in summary.group(1)
    items = [html.unescape(re.sub(r"<[^>]+>", "", li)) for li in re.findall(r"<li>(.*?)</li>", summary.group(1))]
    assert items == [
        'Enter a name: a descriptive name, e.g. "Work Laptop - Cursor".',
        "Description may be at most 2000 characters.",
        "Choose what the key may do: Read-only, Full access or Custom.",
        "Allowed networks: 'nowhere' is not an IPv4 or IPv6 CIDR (such as 203.0.113.0/24 or 2001:db8::/32)",
        "Custom expiry needs a number of days, such as 60.",
    ]
    anchors = re.findall(r'<li><a href="#([^"]+)">', summary.group(1))
    for anchor in anchors:
        assert f'id="{anchor}"' in response.text  # each error links to its input
    assert not any(sign in " ".join(items) for sign in ("^", "$", "[a-z", "\\d", "pattern", "regex"))
    assert 'value="custom" id="expiry-custom" checked' in response.text  # the choices are kept
    async with session_factory() as session:
        assert len(await keys.list_keys(session, tenant_id=person.account.tenant.id)) == 1  # only "test key"


async def test_the_key_created_page_has_ready_to_paste_set_ups(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    posted = await _post(client, name="Set me up", access="read", expiry="30")
    page = await shown_once(posted, client)
    assert page.headers["cache-control"] == "no-store"
    key = KEY_RE.search(page.text)
    assert key
    plaintext = key.group(1)
    snippets = {
        name: html.unescape(text)
        for name, text in re.findall(
            r'<pre class="code" id="snippet-([\w-]+)"[^>]*><code>(.*?)</code></pre>', page.text, flags=re.S
        )
    }
    assert list(snippets) == ["claude-code", "vscode", "cursor-env", "cursor", "curl", "python", "node"]
    mcp = "http://testserver/mcp/v1/common"
    assert snippets["claude-code"] == (
        f'claude mcp add --transport http vibexp_io_common {mcp} \\\n  --header "Authorization: Bearer {plaintext}"'
    )
    vscode = json.loads(snippets["vscode"])
    assert vscode["inputs"][0]["password"] is True and plaintext not in snippets["vscode"]
    assert vscode["servers"]["vibexp_io_common"]["headers"]["Authorization"] == "Bearer ${input:vibexp-key}"
    assert snippets["cursor-env"] == f"export VIBEXP_KEY={plaintext}"
    cursor = json.loads(snippets["cursor"])["mcpServers"]["vibexp_io_common"]
    assert cursor == {"url": mcp, "headers": {"Authorization": "Bearer ${env:VIBEXP_KEY}"}}
    assert snippets["curl"] == f'curl -H "Authorization: Bearer {plaintext}" http://testserver/api/v1/prompts'
    for name in ("python", "node"):
        assert f"Bearer {plaintext}" in snippets[name] and "http://testserver/api/v1/prompts" in snippets[name]
    compile(snippets["python"], "python-set-up", "exec")  # valid Python
    # One copy button per snippet and for the key, hidden until the script shows them (without it: select by hand).
    buttons = re.findall(r'<button type="button"[^>]*data-copy="([^"]+)"[^>]*hidden>', page.text)
    assert buttons == ["new-key"] + [f"snippet-{name}" for name in snippets]


async def test_navigation_follows_the_guide(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    page = (await client.get(LIST)).text
    main = re.search(r'<nav aria-label="Main".*?</nav>', page, flags=re.S)
    settings = re.search(r'<nav aria-label="Settings".*?</nav>', page, flags=re.S)
    assert main and settings
    assert re.findall(r">(\w[\w ]*?)</a>", main.group(0)) == [
        "Overview", "Usage", "Alerts", "Prompts", "Artifacts", "Memories", "Settings"
    ]  # fmt: skip
    assert '<a href="/settings/api-keys" aria-current="true">Settings</a>' in main.group(0)
    settings_links = [  # an owner
        "API Keys", "Account", "Members", "Connected apps", "Alerts settings", "Audit log", "Export"
    ]  # fmt: skip
    assert re.findall(r">(\w[\w ]*?)</a>", settings.group(0)) == settings_links
    assert '<a href="/settings/api-keys" aria-current="page">API Keys</a>' in settings.group(0)
    assert '<a class="docs-link" href="/docs">API docs</a>' in page
    assert '<p class="crumbs">Settings → API Keys</p>' in page
    assert '<nav aria-label="Settings"' not in (await client.get("/usage")).text  # only on Settings pages


async def test_settings_account(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    page = await client.get("/settings/account")
    assert page.status_code == 200
    facts = re.sub(r"<[^>]+>", " ", page.text)
    assert person.email in facts and person.account.tenant.name in facts
    assert "no limit: keys may never expire" in facts
    assert '<a href="/settings/account" aria-current="page">Account</a>' in page.text
    signed_out = await httpx.AsyncClient(transport=client._transport, base_url="http://testserver").get(
        "/settings/account"
    )
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login?next=/settings/account"


HTML = {"Accept": "text/html,application/xhtml+xml"}


async def test_a_signed_in_404_and_405_are_pages_with_the_navigation_and_badge(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_alert(session_factory, person, AlertKind.request_spike, details={"requests_per_minute": 900})
    await sign_in(client, person)
    missing = await client.get("/settings/no-such-page", headers=HTML)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in missing.text and '<nav aria-label="Main"' in missing.text
    assert badge(missing.text) == 1 and missing.headers["cache-control"] == "no-store"
    wrong = await client.get("/logout", headers=HTML)  # the sign-out form POSTs
    assert wrong.status_code == 405 and "<h1>Not possible here</h1>" in wrong.text
    assert wrong.headers["allow"] == "POST" and badge(wrong.text) == 1
    posted = await client.post("/settings/account", headers=HTML)
    assert posted.status_code == 405 and badge(posted.text) == 1  # the badge on a POST's error page too


async def test_api_clients_keep_json_errors_and_signed_out_browsers_get_a_page(
    client: httpx.AsyncClient, person: Person
) -> None:
    anonymous = await client.get("/no-such-page", headers=HTML)
    assert anonymous.status_code == 404 and "<h1>Not found</h1>" in anonymous.text
    assert 'href="/settings/api-keys"' not in anonymous.text  # no navigation for a visitor who is not signed in
    assert (await client.get("/no-such-page")).json()["error"]["code"] == "not_found"  # a script: JSON
    await sign_in(client, person)
    response = await client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    for path in ("/api/v1/no-such", "/static/no-such.css"):  # not pages: never the HTML page, even for a browser
        response = await client.get(path, headers=HTML)
        assert response.status_code in (401, 404) and "error" in response.json(), path
