"""Sign in and sign out, the account switcher, and Settings → Account (who is signed in, the account's tier, limit
and key policy).

Passwords only ever open a dashboard session; the API accepts nothing but API keys.

The account switcher (``POST /account/switch``, shown in the navigation to a person in several accounts) re-issues
the session for the chosen account — the same session (signing out still ends it) with a new CSRF token, so a form
left open for the other account is refused rather than run in this one — and sends them to the same kind of page
there (the overview when their role there cannot open it). An account they are not a member of is a 404 and changes
nothing. A switch is not audited: it grants nothing, each account's audit trail already names the person in
everything they do there, and sign-ins are audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import BrowserSession, CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute, safe_next
from vibexp.api.dashboard.nav import section_of
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.sessions import SessionData, password_fingerprint
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.api.middleware.client_address import client_address
from vibexp.core.access import ceiling
from vibexp.core.errors import AuthenticationFailed, NotFound
from vibexp.core.users import usecases as users
from vibexp.core.users.revoked_sessions import revoke_session

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
        user = await users.sign_in(
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


@router.post("/account/switch", dependencies=[CsrfChecked])
async def switch_account(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    account: Annotated[str, Form(max_length=36)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Work in another account of the signed-in person's: the same kind of page there, with a notice."""
    chosen = await users.person(db, user_id=viewer.user.id, tenant_id=account) if account else None
    if chosen is None or chosen.moved:
        raise NotFound("you are not a member of that account")
    landing = section_of(safe_next(next), ceiling(chosen.role))  # the same kind of page, if the role there opens it
    response = redirect(request, f"{landing}?notice=switched")
    dashboard_state(request).signer.set_cookie(response, viewer.session.in_account(chosen.tenant.id))
    return response
