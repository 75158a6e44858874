"""Settings → Export in a real browser: upload a memory.jsonl through the file input, see the counts, download the
export and find the memories in it; a bad file says which line and imports nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from browser.conftest import DashboardUser
from browser.test_dashboard_browser import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_upload_then_download(
    page: Page, dashboard_user: DashboardUser, tmp_path: Path, screenshots: Path
) -> None:
    graph = tmp_path / "memory.jsonl"
    lines = [
        {"type": "entity", "name": "Ada", "entityType": "person", "observations": ["Wrote the first program"]},
        {"type": "relation", "from": "Ada", "to": "Babbage", "relationType": "worked_with"},
    ]
    graph.write_text("".join(json.dumps(line) + "\n" for line in lines))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "memory", "content": "ok"}\nnot json\n')

    await sign_in(page, dashboard_user)
    await page.get_by_role("link", name="Settings", exact=True).click()  # Settings → Export
    await page.get_by_role("navigation", name="Settings").get_by_role("link", name="Export").click()
    await expect(page.get_by_role("heading", name="Export and import")).to_be_visible()

    await page.get_by_label("File").set_input_files(str(bad))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was imported: line 2: not JSON")

    await page.get_by_label("File").set_input_files(str(graph))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("status")).to_have_text("Imported: 2 created, 0 updated, 0 unchanged.")
    await shot(page, screenshots, "30-export-import")

    async with page.expect_download() as info:
        await page.locator('a[href="/settings/export/download"]').click()
    download = await info.value
    exported = [json.loads(line) for line in Path(await download.path()).read_text().splitlines()]
    contents = sorted(line["content"] for line in exported)  # ids of one millisecond: no creation order
    assert contents == ["Ada worked_with Babbage", "Ada: Wrote the first program"]
    assert download.suggested_filename.endswith(".jsonl")
