"""The dashboard in a real browser (Debian's Chromium via Playwright) against a live ``vibexp serve``.

Each test walks a path a person takes and checks the result where it matters: on the page and against the REST API
with the key read from the page. Screenshots of every page land in ``test-output/screenshots/``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from browser.conftest import DashboardUser
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY_RE = re.compile(r"^vib_[0-9a-f]{64}$")
ACTION_RE = re.compile(r"GET /(api/v1/)?prompts")
WARNING = "API keys are displayed only once during creation. Copy and save the key immediately."


async def shot(page: Page, screenshots: Path, name: str) -> None:
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


async def sign_in(page: Page, user: DashboardUser) -> None:
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(user.email)
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def create_key(page: Page, name: str, description: str = "") -> str:
    await page.goto("/settings/api-keys")
    await page.locator("summary", has_text="Create New API Key").click()
    await page.get_by_label("Name").fill(name)
    if description:
        await page.get_by_label("Description").fill(description)
    await page.get_by_label("Full access").check()
    await page.get_by_role("button", name="Create", exact=True).click()
    await expect(page.get_by_text(WARNING)).to_be_visible()
    key = await page.get_by_test_id("new-key").input_value()
    assert KEY_RE.match(key), key
    return key


def rest(server: LiveServer, key: str) -> int:
    return httpx.get(f"{server.url}/api/v1/prompts", headers={"Authorization": f"Bearer {key}"}).status_code


async def test_sign_in_with_wrong_then_right_password(
    page: Page, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await shot(page, screenshots, "01-login")

    await page.get_by_label("E-mail").fill(dashboard_user.email)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")
    await expect(page.get_by_label("E-mail")).to_have_value(dashboard_user.email)
    await shot(page, screenshots, "02-login-wrong-password")

    await page.get_by_label("Password").fill(dashboard_user.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.get_by_text(dashboard_user.email)).to_be_visible()
    await shot(page, screenshots, "03-overview")


async def test_create_use_see_usage_and_revoke_a_key(
    page: Page, dashboard_user: DashboardUser, live_server: LiveServer, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/settings/api-keys")
    await expect(page.get_by_text("You have no API keys yet")).to_be_visible()
    await shot(page, screenshots, "04-keys-empty")
    await page.locator("summary", has_text="Create New API Key").click()
    await page.get_by_label("Name").fill("Work Laptop - Cursor")
    await page.get_by_label("Description").fill("Cursor on the work laptop")
    await shot(page, screenshots, "05-keys-create-form")
    await page.get_by_label("Full access").check()
    await page.get_by_role("button", name="Create", exact=True).click()

    await expect(page.get_by_text(WARNING)).to_be_visible()
    key = await page.get_by_test_id("new-key").input_value()
    assert KEY_RE.match(key)
    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.locator("#copy-status")).to_have_text(re.compile("Copied|Copy failed"))
    await shot(page, screenshots, "06-key-created")

    assert rest(live_server, key) == 200

    # The list shows the key without its secret; usage arrives within the recorder's flush interval.
    await page.get_by_role("link", name="I have saved my key").click()
    row = page.locator("tr", has_text="Work Laptop - Cursor")
    await expect(row).to_contain_text(key[:12])
    await expect(row).to_contain_text("Active")
    assert key not in await page.content()
    await row.get_by_role("link", name=re.compile("^Manage")).click()
    for _ in range(40):
        if (await page.get_by_test_id("request-count").inner_text()).strip() == "1":
            break
        await asyncio.sleep(0.25)
        await page.reload()
    await expect(page.get_by_test_id("request-count")).to_have_text("1")
    await expect(page.locator("table.data")).to_contain_text(ACTION_RE)
    await expect(page.locator(".chart-canvas svg").first).to_be_visible()
    await shot(page, screenshots, "07-key-usage")

    await page.goto("/usage")
    await expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    await expect(page.locator("tr", has_text="Work Laptop - Cursor").first).to_contain_text("Active")
    await expect(page.get_by_text(ACTION_RE).first).to_be_visible()
    await shot(page, screenshots, "08-usage")

    await page.goto("/settings/api-keys")
    await page.locator("tr", has_text="Work Laptop - Cursor").get_by_role("link", name=re.compile("^Revoke")).click()
    await expect(page.get_by_role("heading", name=re.compile("Revoke"))).to_be_visible()
    await shot(page, screenshots, "09-revoke-confirm")
    await page.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("status")).to_contain_text("Revoked")
    await expect(page.locator("tr", has_text="Work Laptop - Cursor")).to_contain_text("Revoked")
    await shot(page, screenshots, "10-keys-after-revoke")

    assert rest(live_server, key) == 401  # at once: no waiting


async def test_rotate_a_key(
    page: Page, dashboard_user: DashboardUser, live_server: LiveServer, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    old = await create_key(page, "CI/CD Pipeline - GitHub Actions")
    assert rest(live_server, old) == 200

    await page.goto("/settings/api-keys")
    await page.get_by_role("link", name="CI/CD Pipeline - GitHub Actions", exact=True).click()
    await page.get_by_label("Keep the old key working for").select_option(label="1 hour")
    await shot(page, screenshots, "11-key-detail-rotate")
    await page.get_by_role("button", name="Rotate key").click()
    await expect(page.get_by_role("heading", name="Key rotated")).to_be_visible()
    await expect(page.get_by_text(WARNING)).to_be_visible()
    await expect(page.get_by_text("The old key keeps working for 1 hour")).to_be_visible()
    new = await page.get_by_test_id("new-key").input_value()
    assert KEY_RE.match(new) and new != old
    await shot(page, screenshots, "12-key-rotated")
    assert rest(live_server, new) == 200
    assert rest(live_server, old) == 200  # inside the grace period

    # Rotating again without a grace period ends the previous key at once.
    await page.goto("/settings/api-keys")
    await page.locator("tr", has_text=new[:12]).get_by_role("link", name=re.compile("^Manage")).click()
    await page.get_by_role("button", name="Rotate key").click()
    newest = await page.get_by_test_id("new-key").input_value()
    await expect(page.get_by_text("The old key was revoked")).to_be_visible()
    assert rest(live_server, new) == 401
    assert rest(live_server, newest) == 200


async def test_a_form_without_the_csrf_token_is_refused(
    page: Page, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/settings/api-keys")
    await page.locator("summary", has_text="Create New API Key").click()
    await page.get_by_label("Name").fill("forged")
    await page.locator("form[action='/settings/api-keys'] input[name=csrf_token]").evaluate("e => e.value = 'forged'")
    await page.get_by_label("Full access").check()
    await page.get_by_role("button", name="Create", exact=True).click()
    await expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("nothing was changed")
    await shot(page, screenshots, "13-csrf-refused")

    # A page on another origin posting to the dashboard is refused too (SameSite keeps the cookie; no token anyway).
    response = await page.request.post("/settings/api-keys", form={"name": "forged"})
    assert response.status == 403
    await page.goto("/settings/api-keys")
    await expect(page.get_by_text("You have no API keys yet")).to_be_visible()


async def test_sign_out(page: Page, dashboard_user: DashboardUser, screenshots: Path) -> None:
    await sign_in(page, dashboard_user)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You have signed out.")
    await shot(page, screenshots, "14-signed-out")
    await page.goto("/settings/api-keys")
    await expect(page).to_have_url(re.compile(r"/login\?next=/settings/api-keys$"))
    cookies = await page.context.cookies()
    assert all(c["httpOnly"] and c["sameSite"] == "Lax" for c in cookies if c["name"] == "vibexp_session")


async def test_browse_search_and_edit_content(page: Page, dashboard_user: DashboardUser, screenshots: Path) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/prompts")
    await expect(page.get_by_text("No prompts yet")).to_be_visible()
    await page.get_by_role("link", name="New prompt").click()
    await page.get_by_label("Name").fill("code-review")
    await page.get_by_label("Description").fill("Review a file")
    await page.get_by_label("Tags").fill("review, python")
    await page.get_by_label("Content").fill("Review {{file}} for bugs.")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await page.get_by_label("Content").fill("Review {{file}} for bugs and style.")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_label("Content")).to_have_value("Review {{file}} for bugs and style.")
    await shot(page, screenshots, "15-prompt-edit")

    await page.goto("/prompts")
    await page.get_by_label("Search prompts").fill("style")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="code-review")).to_be_visible()
    await shot(page, screenshots, "16-prompts-search")
    await page.get_by_label("Search prompts").fill("nothing-like-this")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("No prompts match")).to_be_visible()

    await page.goto("/memories/new")
    await page.get_by_label("Content").fill("The staging database is on port 5433.")
    await page.get_by_label("Tags").fill("infra")
    await page.get_by_role("button", name="Create").click()
    await page.goto("/memories?q=staging")
    await expect(page.get_by_role("link", name=re.compile("staging database"))).to_be_visible()
    await shot(page, screenshots, "17-memories")

    await page.goto("/artifacts/new")
    await page.get_by_label("Project").fill("vibexp")
    await page.get_by_label("Slug").fill("design-notes")
    await page.get_by_label("Title").fill("Design notes")
    await page.get_by_label("Content", exact=True).fill("# Design\n\nKeys are hashed.")
    await page.get_by_role("button", name="Create").click()
    await expect(page).to_have_url(re.compile(r"/artifacts/vibexp/design-notes\?saved=1$"))
    await page.goto("/artifacts")
    await expect(page.get_by_role("link", name="Design notes")).to_be_visible()
    await shot(page, screenshots, "18-artifacts")


async def test_narrow_screen_and_keyboard(page: Page, dashboard_user: DashboardUser, screenshots: Path) -> None:
    await page.set_viewport_size({"width": 375, "height": 740})
    await sign_in(page, dashboard_user)
    await create_key(page, "Personal MacBook - VS Code")
    await shot(page, screenshots, "19-narrow-key-created")
    for path, name in (("/settings/api-keys", "20-narrow-keys"), ("/usage", "21-narrow-usage")):
        await page.goto(path)
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        await shot(page, screenshots, name)

    await page.goto("/settings/api-keys")
    await page.get_by_role("link", name="Personal MacBook - VS Code", exact=True).click()
    await expect(page.get_by_role("button", name="Rotate key")).to_be_visible()
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the key page scrolls sideways by {overflow}px"
    await shot(page, screenshots, "22-narrow-key-detail")

    # The first Tab reaches the skip link, and a focused control shows a visible outline.
    await page.keyboard.press("Tab")
    focused = page.locator(":focus")
    await expect(focused).to_have_text("Skip to content")
    outline = await focused.evaluate("e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth")
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline


CONTRAST_JS = """
(selectors) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      const fg = lum(rgb(getComputedStyle(el).color).slice(0, 3)), bg = lum(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      out.push([sel, Math.round(ratio * 100) / 100]);
    }
  }
  return out;
}
"""
UNLABELLED_JS = """
() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.outerHTML)
"""
TEXT = [
    "body",
    "h1",
    ".muted",
    ".help",
    ".topbar nav a",
    ".who",
    ".button",
    "a",
    ".badge",
    ".banner",
    "label",
    "th",
    "td",
    "code",
    ".stat-label",
    ".empty",
    ".tag",
    ".footer",
]


async def test_text_contrast_and_labelled_controls(
    page: Page, dashboard_user: DashboardUser, live_server: LiveServer
) -> None:
    """WCAG AA: every text colour on its background is at least 4.5:1, and every form control has a label."""
    await page.goto("/login")
    assert await page.evaluate(UNLABELLED_JS) == []
    await sign_in(page, dashboard_user)
    key = await create_key(page, "contrast check")
    assert rest(live_server, key) == 200
    for path in (
        "/",
        "/settings/api-keys",
        "/usage",
        "/prompts/new",
        "/memories",
        "/memories/new",
        "/artifacts/new",
        "/settings/export",
    ):
        await page.goto(path)
        if path == "/settings/api-keys":
            await page.locator("summary", has_text="Create New API Key").click()
        assert await page.evaluate(UNLABELLED_JS) == [], path
        low = [(sel, ratio) for sel, ratio in await page.evaluate(CONTRAST_JS, TEXT) if ratio < 4.5]
        assert low == [], f"{path}: {low}"


async def test_create_a_key_with_the_keyboard_alone(page: Page, dashboard_user: DashboardUser) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/settings/api-keys")
    for _ in range(30):  # Tab through the page until the create control has focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    await expect(page.locator(":focus")).to_have_text("Create New API Key")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.locator(":focus")).to_have_attribute("name", "name")
    await page.keyboard.type("Keyboard only")
    await page.keyboard.press("Tab")  # description
    await expect(page.locator(":focus")).to_have_attribute("name", "description")
    await page.keyboard.press("Tab")  # the permissions: nothing preselected, the first choice is Read-only
    await expect(page.locator(":focus")).to_have_attribute("id", "access-read")
    await page.keyboard.press("Space")
    await expect(page.get_by_label("Read-only")).to_be_checked()
    for _ in range(20):  # past the permissions (the preset radios, the grid, networks, expiry) to the Create button
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
    await expect(page.locator(":focus")).to_have_text("Create")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text(WARNING)).to_be_visible()
    assert KEY_RE.match(await page.get_by_test_id("new-key").input_value())


async def test_prompt_history_diff_and_promote(page: Page, dashboard_user: DashboardUser, screenshots: Path) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/prompts/new")
    await page.get_by_label("Name").fill("versioned")
    await page.get_by_label("Content").fill("Check {{file}}.\nBe brief.")
    await page.get_by_role("button", name="Create").click()
    await page.get_by_label("Content").fill("Check {{file}} <carefully>.\nBe brief.")
    await page.get_by_role("button", name="Save").click()
    history = page.get_by_role("region", name="Version history")
    await expect(history.get_by_role("link", name=re.compile(r"^v\d$"))).to_have_text(["v2", "v1"])
    await history.get_by_role("link", name="v2").click()
    await expect(page.locator("pre.diff .diff-add")).to_have_text("+Check {{file}} <carefully>.")
    await expect(page.locator("pre.diff .diff-remove")).to_have_text("-Check {{file}}.")
    assert await page.evaluate(UNLABELLED_JS) == []
    low = [(sel, r) for sel, r in await page.evaluate(CONTRAST_JS, [*TEXT, ".diff-add", ".diff-remove"]) if r < 4.5]
    assert low == []
    await shot(page, screenshots, "23-prompt-version-diff")
    await page.goto(page.url.replace("/versions/2", "/versions/1"))
    await page.get_by_role("button", name="Promote to production").click()
    await expect(page.get_by_role("status")).to_have_text("Promoted to production.")
    await expect(page.get_by_role("button", name="Promote to production")).to_have_count(0)
