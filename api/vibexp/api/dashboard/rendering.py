"""Rendering pages: Jinja2 templates (autoescaped), the session cookie for new visitors, and security headers.

Every dashboard response is ``Cache-Control: no-store`` (pages show account data, and one of them a new key) and
carries a Content-Security-Policy that allows only this app's own scripts, styles and images: no CDN, no inline
script, no framing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from vibexp.api.dashboard.deps import NEW_SESSION_STATE, browser_session
from vibexp.api.dashboard.nav import SECTIONS, SETTINGS_PAGES, notice_text
from vibexp.api.dashboard.state import dashboard_state
from vibexp.core.geo import country_name

__all__ = ["SECURITY_HEADERS", "TEMPLATES_DIR", "redirect", "relative_time", "render", "templates"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _timestamp(value: datetime | None) -> Markup:
    """``<time>`` with the machine-readable instant and a readable UTC minute; an em dash for never."""
    if value is None:
        return Markup('<span class="muted">Never</span>')
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), value.strftime("%Y-%m-%d %H:%M UTC"))


#: (seconds in the unit, its name), largest first: "3 minutes ago", "in 2 days".
_UNITS = (
    (365 * 86400, "year"),
    (30 * 86400, "month"),
    (7 * 86400, "week"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
)


def relative_time(value: datetime, now: datetime | None = None) -> str:
    """``value`` seen from ``now`` in words: "just now", "3 minutes ago", "in 2 days" (rounded down to whole units)."""
    moment = now or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int((moment - value).total_seconds())
    if abs(seconds) < 60:
        return "just now"
    size, unit = next((size, unit) for size, unit in _UNITS if abs(seconds) >= size)  # a minute at least
    count = abs(seconds) // size
    words = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{words} ago" if seconds > 0 else f"in {words}"


def _ago(value: datetime | None) -> Markup:
    """``<time>`` reading "3 minutes ago", the exact UTC minute on hover (``title``), computed here: no JavaScript."""
    if value is None:
        return Markup('<span class="muted">Never</span>')
    exact = value.strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(value.isoformat(), exact, relative_time(value))


def _country(code: str | None) -> Markup:
    """A registered country as people read it, "Germany", with its ISO code beside it (what the API and metrics say)."""
    if not code:
        return Markup('<span class="muted">Unknown</span>')
    name = country_name(code)
    if name is None:
        return Markup("<code>{}</code>").format(code)
    return Markup('<span>{} <code class="muted">{}</code></span>').format(name, code)


def _number(value: int | None) -> str:
    return f"{value or 0:,}"


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["ts"] = _timestamp
templates.env.filters["num"] = _number
templates.env.filters["ago"] = _ago
templates.env.filters["country"] = _country
templates.env.globals.update(nav_sections=SECTIONS, settings_pages=SETTINGS_PAGES)


def _finish(request: Request, response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    new_session = getattr(request.state, NEW_SESSION_STATE, None)
    if new_session is not None:
        dashboard_state(request).signer.set_cookie(response, new_session)
    return response


def _page_notice(request: Request, viewer: Any) -> str | None:
    """The one-line notice a redirect asked for (``?notice=``), about the signed-in viewer's account."""
    code = request.query_params.get("notice")
    if viewer is None or not code:
        return None
    return notice_text(code, account=viewer.tenant.display_name or viewer.tenant.name, role=str(viewer.caller.role))


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> Response:
    session = browser_session(request)
    viewer = getattr(request.state, "dashboard_viewer", None)
    page_context = {
        "csrf_token": session.csrf,
        "viewer": viewer,
        "page_notice": _page_notice(request, viewer),
        "open_alerts": getattr(request.state, "dashboard_open_alerts", 0),
        "signed_in": bool(session.uid),
        "path": request.url.path,
        **(context or {}),
    }
    response: HTMLResponse = templates.TemplateResponse(request, template, page_context, status_code=status)
    return _finish(request, response)


def redirect(request: Request, url: str) -> Response:
    """303 See Other: after a POST the browser follows with a GET, so a reload does not repeat the action."""
    return _finish(request, RedirectResponse(url, status_code=303))
