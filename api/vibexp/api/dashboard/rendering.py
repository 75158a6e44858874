"""Rendering pages: Jinja2 templates (autoescaped), the session cookie for new visitors, and security headers.

Every dashboard response is ``Cache-Control: no-store`` (pages show account data, and one of them a new key) and
carries a Content-Security-Policy that allows only this app's own scripts, styles and images: no CDN, no inline
script, no framing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from vibexp.api.dashboard.deps import NEW_SESSION_STATE, browser_session
from vibexp.api.dashboard.state import dashboard_state

__all__ = ["SECURITY_HEADERS", "TEMPLATES_DIR", "redirect", "render", "templates"]

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


def _number(value: int | None) -> str:
    return f"{value or 0:,}"


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["ts"] = _timestamp
templates.env.filters["num"] = _number


def _finish(request: Request, response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    new_session = getattr(request.state, NEW_SESSION_STATE, None)
    if new_session is not None:
        dashboard_state(request).signer.set_cookie(response, new_session)
    return response


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> Response:
    session = browser_session(request)
    page_context = {
        "csrf_token": session.csrf,
        "viewer": getattr(request.state, "dashboard_viewer", None),
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
