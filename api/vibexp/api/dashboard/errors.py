"""The dashboard adapter's one mapping of errors to pages.

Domain errors get the same status codes as the REST API (``vibexp.api.errors.status_for``) but an HTML page with
a readable message instead of JSON; a missing sign-in becomes a redirect to ``/login`` (or, for a person removed
from the account they were working in who still belongs to another, to that account's overview); a CSRF failure is
403.
A signed-in person who opens a page that does not exist (404) or uses a method a page does not take (405) gets the
same HTML page, with the navigation and the alerts badge (``install_error_pages``); the API and MCP paths, and
anyone not signed in, keep the JSON error body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import AccountLeft, CsrfFailed, SignInRequired, browser_session, current_viewer
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.errors import status_for
from vibexp.core.alerts import usecases as alerts
from vibexp.core.db import session_scope
from vibexp.core.errors import VibeXPError

__all__ = ["NOT_PAGES", "DashboardRoute", "error_page", "install_error_pages", "safe_next"]

CSRF_MESSAGE = (
    "This form has expired or did not come from this dashboard, so nothing was changed. "
    "Go back, reload the page and try again."
)


def safe_next(target: str | None) -> str:
    """Only a local path may be a post-sign-in destination (no open redirect to another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"title": title, "message": message, "status": status}, status=status)


_TITLES = {
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Not possible here",
    409: "Already exists",
    412: "Changed meanwhile",
    422: "Invalid request",
}
_MESSAGES = {
    404: "There is no page at this address. It may have moved, or the link may be mistyped.",
    405: "This page cannot be used that way (a form may have been sent to the wrong address). Nothing was changed.",
}

#: Path prefixes that are not dashboard pages: their errors stay JSON (or whatever they answer) for every caller.
NOT_PAGES = ("/api/", "/mcp", "/static/", "/docs", "/openapi.json", "/metrics", "/healthz", "/readyz", "/.well-known/")


class DashboardRoute(APIRoute):
    """Routes whose errors render as dashboard pages rather than the API's JSON bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except AccountLeft as left:  # on to the person's other account, the request not done
                response = redirect(request, "/?notice=account-left")
                dashboard_state(request).signer.set_cookie(response, left.session)
                return response
            except SignInRequired:
                path = request.url.path
                # Come back to the page after signing in; a form's target is no page, so only for GET.
                back = request.method == "GET" and path != "/"
                target = f"/login?next={quote(path, safe='/')}" if back else "/login"
                return redirect(request, target)
            except CsrfFailed:
                return error_page(request, 403, "Request refused", CSRF_MESSAGE)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                message = f"{where}: {first.get('msg', 'invalid value')}" if where else "Invalid request."
                return error_page(request, 422, "Invalid request", message)
            except VibeXPError as exc:
                status = status_for(exc)
                return error_page(request, status, _TITLES.get(status, "Something went wrong"), exc.message)

        return handle


def install_error_pages(app: FastAPI) -> None:
    """A browser's 404 and 405 as dashboard pages (with the navigation when signed in); scripts, API clients and the
    paths in ``NOT_PAGES`` go to the app's JSON handler."""
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        page = await _browser_page(request, exc)
        if page is not None:
            return page
        answer = json_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, http_error)


async def _browser_page(request: Request, exc: StarletteHTTPException) -> Response | None:
    path = request.url.path
    if exc.status_code not in _MESSAGES or path.startswith(NOT_PAGES):
        return None
    if "text/html" not in request.headers.get("accept", ""):
        return None  # a script or an API client: JSON
    session = browser_session(request)
    if session.uid:  # signed in: the page has the navigation and the alerts badge; signed out, a plain page
        async with session_scope(request.app.state.runtime.session_factory, write=False) as db:
            try:
                viewer = await current_viewer(request, session, db)
            except SignInRequired:
                viewer = None
            if viewer is not None and request.method != "GET":  # the viewer counts open alerts for GET pages only
                request.state.dashboard_open_alerts = await alerts.count_open(db, caller=viewer.caller)
    response = error_page(request, exc.status_code, _TITLES[exc.status_code], _MESSAGES[exc.status_code])
    if exc.headers and "allow" in {name.lower() for name in exc.headers}:
        response.headers.update(exc.headers)
    return response
