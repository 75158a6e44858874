"""Content pages (issue 31 item 6): list items with a summary line, their version and the production marker; the
prompt's read view; Markdown artifacts rendered and sanitised (raw HTML off, only safe link schemes)."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest

from dashboard.pages import Person, csrf_of, sign_in
from vibexp.api.dashboard.markdown import is_markdown, render_markdown, safe_url
from vibexp.api.dashboard.routes.content import SUMMARY_CHARS, summary_line

API = "/api/v1"


class Tags(HTMLParser):
    """Every start tag of a document and its attributes, as an HTML parser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    @classmethod
    def of(cls, html: str) -> list[tuple[str, dict[str, str | None]]]:
        parser = cls()
        parser.feed(html)
        return parser.found


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        "[x](JaVa\tScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](java%0ascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](data:image/png;base64,iVBORw0KGgo=)",
        "![x](javascript:alert(1))",
        "<javascript:alert(1)>",
        '[x](https://example.com "t\\" onmouseover=alert(1) x=\\"")',
        "<svg onload=alert(1)>",
        "<iframe src=https://evil.example></iframe>",
        "[x](//evil.example/path)",
    ],
)
def test_markdown_never_passes_html_or_unsafe_links(payload: str) -> None:
    html = str(render_markdown(f"# Title\n\n{payload}\n"))
    assert "<h1>Title</h1>" in html
    tags = Tags.of(html)  # what a browser's parser sees
    assert {name for name, _ in tags} <= {"h1", "p", "a", "img", "em", "strong", "code"}, html
    for _, attributes in tags:
        assert not [name for name in attributes if name.startswith("on")], html  # no event handler
        for name in ("href", "src"):
            if name in attributes:
                assert (attributes[name] or "").startswith("https://example.com"), html  # the one safe link


def test_markdown_renders_what_people_write() -> None:
    html = str(
        render_markdown("## Notes\n\n- *one*\n- **two**\n\n`code` [docs](https://example.com/a) [here](/prompts)")
    )
    assert "<h2>Notes</h2>" in html and "<em>one</em>" in html and "<strong>two</strong>" in html
    assert '<a href="https://example.com/a" rel="nofollow noopener noreferrer">docs</a>' in html
    assert '<a href="/prompts" rel="nofollow noopener noreferrer">here</a>' in html
    assert "<code>code</code>" in html
    table = str(render_markdown("| a | b |\n|---|---|\n| 1 | 2 |"))
    assert "<table>" in table and "<td>1</td>" in table


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com", True),
        ("http://example.com", True),
        ("mailto:a@example.com", True),
        ("/prompts", True),
        ("#top", True),
        ("notes.md", True),
        ("javascript:alert(1)", False),
        (" JAVASCRIPT:alert(1)", False),
        ("java\nscript:alert(1)", False),
        ("data:text/html,x", False),
        ("file:///etc/passwd", False),
        ("//evil.example", False),
    ],
)
def test_safe_url(url: str, safe: bool) -> None:
    assert safe_url(url) is safe


def test_markdown_content_types() -> None:
    assert (
        is_markdown("text/markdown") and is_markdown("text/markdown; charset=utf-8") and is_markdown("TEXT/X-MARKDOWN")
    )
    assert not is_markdown("text/plain") and not is_markdown(None) and not is_markdown("")


class _Item:
    def __init__(self, description: str = "", content: str = "") -> None:
        self.description, self.content = description, content


def test_summary_line() -> None:
    assert summary_line(_Item("Reviews a diff", "Review {{diff}}")) == "Reviews a diff"
    assert summary_line(_Item("", "\n\n  First line  \nsecond")) == "First line"
    assert summary_line(_Item("", "")) == ""
    long = summary_line(_Item("x" * 500))
    assert len(long) == SUMMARY_CHARS and long.endswith("…")


async def test_artifact_page_renders_markdown_sanitised(client: httpx.AsyncClient, person: Person) -> None:
    content = (
        "# Design\n\nKeys are *hashed*.\n\n<script>alert(1)</script>\n\n"
        "[bad](javascript:alert(1)) <img src=x onerror=alert(1)>\n"
    )
    body = {"project": "docs", "slug": "design", "title": "Design", "content_type": "text/markdown", "content": content}
    assert (await client.post(f"{API}/artifacts", json=body, headers=person.account.headers)).status_code == 201
    plain = {**body, "slug": "plain", "content_type": "text/plain", "title": "Plain"}
    assert (await client.post(f"{API}/artifacts", json=plain, headers=person.account.headers)).status_code == 201
    await sign_in(client, person)

    page = (await client.get("/artifacts/docs/design")).text
    preview = page.split('data-testid="markdown-preview"', 1)[1].split("</section>", 1)[0]
    assert "<h1>Design</h1>" in preview and "<em>hashed</em>" in preview
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview and "<script>alert" not in page
    assert "javascript:" not in preview.replace("[bad](javascript:alert(1))", "")  # shown as text, not a link
    assert 'href="javascript' not in page and "<img" not in preview and "onerror=alert(1)>" not in preview
    assert 'data-testid="markdown-preview"' not in (await client.get("/artifacts/docs/plain")).text


async def test_lists_show_summary_version_and_production(client: httpx.AsyncClient, person: Person) -> None:
    headers = person.account.headers
    made = await client.post(
        f"{API}/prompts",
        json={"name": "review", "description": "Reviews a diff", "content": "Review {{diff}}"},
        headers=headers,
    )
    prompt = made.json()
    other = (
        await client.post(
            f"{API}/prompts", json={"name": "plain", "content": "\nSummarise {{text}}\nmore"}, headers=headers
        )
    ).json()
    assert (
        await client.put(
            f"{API}/prompts/{prompt['id']}", json={"content": "Review {{diff}} for {{lang}}"}, headers=headers
        )
    ).status_code == 200
    await client.post(f"{API}/memories", json={"content": "Deploys run on Fridays\nsecond line"}, headers=headers)
    await sign_in(client, person)
    page = (await client.get("/prompts")).text
    token = csrf_of(page)
    promoted = await client.post(f"/prompts/{prompt['id']}/versions/1/promote", data={"csrf_token": token})
    assert promoted.status_code == 303

    html = (await client.get("/prompts")).text
    review = html.split(f'href="/prompts/{prompt["id"]}/view"', 1)[1].split("</li>", 1)[0]
    assert 'data-testid="version" title="Version 2">v2<' in review
    assert ">production: v1<" in review
    assert 'data-testid="summary">Reviews a diff<' in review
    plain = html.split(f'href="/prompts/{other["id"]}/view"', 1)[1].split("</li>", 1)[0]
    assert 'data-testid="summary">Summarise {{text}}<' in plain and "production" not in plain

    memories = (await client.get("/memories")).text
    assert "Deploys run on Fridays" in memories and ">v1<" in memories


async def test_prompt_read_view(client: httpx.AsyncClient, person: Person, other_person: Person) -> None:
    body = {
        "name": "review",
        "description": "Reviews a diff",
        "content": "Review {{diff}} in {{ lang }}\n" + "x" * 400,
        "tags": ["code"],
    }
    prompt = (await client.post(f"{API}/prompts", json=body, headers=person.account.headers)).json()
    theirs = (await client.post(f"{API}/prompts", json=body, headers=other_person.account.headers)).json()
    await sign_in(client, person)
    page = await client.get(f"/prompts/{prompt['id']}/view")
    assert page.status_code == 200
    html = page.text
    assert "<h1>review</h1>" in html and 'data-testid="description">Reviews a diff<' in html
    assert "Arguments: <code>diff</code>, <code>lang</code>" in html
    assert 'data-testid="prompt-content">Review {{diff}} in {{ lang }}' in html
    assert f'href="/prompts/{prompt["id"]}">Edit</a>' in html and "No production version" in html
    assert "Version history" in html
    missing = await client.get(f"/prompts/{theirs['id']}/view")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
