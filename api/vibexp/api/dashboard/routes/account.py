"""Sign in and sign out, and Settings → Account (who is signed in, the account's tier, limit and key policy).

Passwords only ever open a dashboard session; the API accepts nothing but API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import BrowserSession, CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute, safe_next
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.sessions import SessionData, password_fingerprint
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.api.middleware.client_address import client_address
from vibexp.core.errors import AuthenticationFailed
from vibexp.core.users.revoked_sessions import revoke_session
from vibexp.core.users.usecases import sign_in

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)


def _client_ip(request: Request) -> str:
    """The sign-in bucket's address: the resolved client (behind a proxy, not the proxy)."""
    return client_address(request.scope) or "unknown"


@router.get("/login")
async def login_page(request: Request, session: BrowserSession, db: SessionDep, next: str | None = None) -> Response:
    if session.uid:
        return redirect(request, safe_next(next))
    notice = "You have signed out." if request.query_params.get("signed_out") else None
    first_run = await dashboard_state(request).setup.needed(db)  # no user yet: say how to make the first one
    context = {"next": safe_next(next), "notice": notice, "email": "", "first_run": first_run}
    return render(request, "login.html", context)


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
    # Reserved (and committed) before the password is checked: concurrent attempts on any replica share the budget.
    retry_after = await state.attempts.reserve(email=who, ip=ip)
    if retry_after:
        minutes = max(1, -(-retry_after // 60))
        message = f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        response = render(request, "login.html", {**context, "error": message}, status=429)
        response.headers["Retry-After"] = str(retry_after)
        return response
    try:
        user = await sign_in(
            db, email=who, password=password, client_ip=ip, user_agent=request.headers.get("user-agent")
        )
    except AuthenticationFailed:  # the reservation stays: it is the failure
        return render(request, "login.html", {**context, "error": "Wrong e-mail or password."}, status=401)
    await state.attempts.succeeded(db, email=who, ip=ip)
    new = SessionData.for_user(user_id=user.id, fingerprint=password_fingerprint(user.password_hash))
    response = redirect(request, safe_next(next))
    state.signer.set_cookie(response, new)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
async def logout(request: Request, session: BrowserSession, db: SessionDep) -> Response:
    signer = dashboard_state(request).signer
    signer.deny(session)  # at once in this process
    if session.uid:  # and in the database, which every replica checks for signed-in pages
        await revoke_session(db, sid=session.sid, expires_at=session.expires_at)
    response = redirect(request, "/login?signed_out=1")
    signer.clear_cookie(response)
    return response


@router.get("/settings/account")
async def account_page(request: Request, viewer: CurrentViewer) -> Response:
    """What the account is (read from the signed-in viewer: no query of its own)."""
    return render(request, "settings/account.html", {"tenant": viewer.tenant, "user": viewer.user})
