"""Sign in and sign out. Passwords only ever open a dashboard session; the API accepts nothing but API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import BrowserSession, CsrfChecked
from vibexp.api.dashboard.errors import DashboardRoute, safe_next
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.sessions import SessionData, password_fingerprint
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.core.errors import AuthenticationFailed
from vibexp.core.users.service import authenticate

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
async def login_page(request: Request, session: BrowserSession, next: str | None = None) -> Response:
    if session.uid:
        return redirect(request, safe_next(next))
    notice = "You have signed out." if request.query_params.get("signed_out") else None
    return render(request, "login.html", {"next": safe_next(next), "notice": notice, "email": ""})


@router.post("/login", dependencies=[CsrfChecked])
async def login(
    request: Request,
    db: SessionDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    state = dashboard_state(request)
    who = email.strip().lower()
    ip = _client_ip(request)
    context = {"next": safe_next(next), "email": email, "notice": None}
    if not who or not password:
        return render(request, "login.html", {**context, "error": "Enter your e-mail and password."}, status=422)
    verdict = state.throttle.check(email=who, ip=ip)
    if not verdict.allowed:
        minutes = max(1, -(-verdict.retry_after // 60))
        message = f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        response = render(request, "login.html", {**context, "error": message}, status=429)
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response
    try:
        user = await authenticate(db, email=who, password=password)
    except AuthenticationFailed:
        state.throttle.failed(email=who, ip=ip)
        return render(request, "login.html", {**context, "error": "Wrong e-mail or password."}, status=401)
    state.throttle.succeeded(email=who)
    new = SessionData.for_user(user_id=user.id, fingerprint=password_fingerprint(user.password_hash))
    response = redirect(request, safe_next(next))
    state.signer.set_cookie(response, new)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
async def logout(request: Request, session: BrowserSession) -> Response:
    signer = dashboard_state(request).signer
    signer.deny(session)
    response = redirect(request, "/login?signed_out=1")
    signer.clear_cookie(response)
    return response
