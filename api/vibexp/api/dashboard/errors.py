"""The dashboard adapter's one mapping of errors to pages.

Domain errors get the same status codes as the REST API (``vibexp.api.errors.status_for``) but an HTML page with
a readable message instead of JSON; a missing sign-in becomes a redirect to ``/login``; a CSRF failure is 403.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import CsrfFailed, SignInRequired
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.errors import status_for
from vibexp.core.errors import VibeXPError

__all__ = ["DashboardRoute", "error_page", "safe_next"]

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


_TITLES = {401: "Not signed in", 403: "Not allowed", 404: "Not found", 409: "Already exists", 412: "Changed meanwhile"}


class DashboardRoute(APIRoute):
    """Routes whose errors render as dashboard pages rather than the API's JSON bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
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
