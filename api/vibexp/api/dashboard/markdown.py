"""Markdown artifacts as HTML on the dashboard, safely: CommonMark by markdown-it-py with raw HTML off (any tag in
the text is shown as text, escaped), and links and images only to ``http``, ``https``, ``mailto`` or a path on this
site; anything else (``javascript:``, ``data:``, ``vbscript:``, ``file:``) stays unlinked text. Links open no
referrer and are marked ``nofollow``. The page's CSP (no inline script) is the second line of defence.
"""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["MARKDOWN_TYPES", "is_markdown", "render_markdown", "safe_url"]

#: Content types rendered as Markdown (parameters such as ``; charset=utf-8`` ignored).
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
#: A scheme at the start of a URL (``javascript:``); browsers ignore control characters and blanks inside it.
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.I)
_IGNORED = re.compile(r"[\x00-\x20\x7f]")
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


def safe_url(url: str) -> bool:
    """Only http(s), mailto, or a scheme-less reference (a path, ``#anchor``, ``?query``), never ``//host``."""
    cleaned = _IGNORED.sub("", url)
    match = _SCHEME.match(cleaned)
    if match:
        return match.group(1).lower() in _SAFE_SCHEMES
    return not cleaned.startswith("//") and not cleaned.startswith("\\\\") and ":" not in cleaned.split("/")[0]


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_url  # type: ignore[method-assign]
    md.enable("table").enable("strikethrough")

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    return md


_MD = _renderer()


def is_markdown(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in MARKDOWN_TYPES


def render_markdown(text: str) -> Markup:
    """HTML for ``text``: safe to put in a page as is (see the module's docstring)."""
    return Markup(_MD.render(text))  # noqa: S704 - markdown-it escapes all text; raw HTML is off; links vetted
