"""Who is looking: the browser session from the cookie, the signed-in user, and the CSRF check for every POST.

``browser_session`` always yields a session (a new anonymous one when the cookie is missing or invalid) and marks
new ones on ``request.state`` so the page renderer sets the cookie. ``CurrentViewer`` raises ``SignInRequired``,
which the dashboard's route class turns into a redirect to ``/login``.

The viewer acts in the account the session chose (``SessionData.tid``, set by the account switcher and by joining an
account; empty: their home account). A person removed from that account who is still a member of another is not
signed out: ``AccountLeft`` re-issues the session for that other account and the route class redirects them to its
overview with a notice; nothing the request asked for is done (a form meant for the old account never runs in the
new one). A person who belongs to no account any more must sign in again.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Header, Request

from vibexp.api.dashboard.sessions import SessionData, password_fingerprint
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.api.middleware.client_address import client_address
from vibexp.core.access import Caller, Scope
from vibexp.core.alerts import usecases as alerts
from vibexp.core.tenants.models import Tenant
from vibexp.core.users import usecases as users
from vibexp.core.users.models import User
from vibexp.core.users.revoked_sessions import is_session_revoked

__all__ = [
    "NEW_SESSION_STATE",
    "AccountLeft",
    "BrowserSession",
    "CsrfChecked",
    "CsrfFailed",
    "CurrentViewer",
    "SignInRequired",
    "Viewer",
    "browser_session",
]

NEW_SESSION_STATE = "dashboard_new_session"


class SignInRequired(Exception):
    """The page needs a signed-in user; answered with a redirect to the sign-in page."""


class AccountLeft(SignInRequired):
    """The session's account is no longer the person's, but another one is: ``session`` acts in that one."""

    def __init__(self, session: SessionData) -> None:
        super().__init__("no longer a member of the session's account")
        self.session = session


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token; answered with 403."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: their user, account, browser session and the ``Caller`` their actions run as, and every
    account they are a member of (the navigation's account switcher, shown when there are two or more)."""

    user: User
    tenant: Tenant
    session: SessionData
    caller: Caller
    accounts: tuple[users.Account, ...] = ()


def browser_session(request: Request) -> SessionData:
    cached = getattr(request.state, "dashboard_session", None)
    if isinstance(cached, SessionData):
        return cached
    signer = dashboard_state(request).signer
    data = signer.loads(request.cookies.get(signer.cookie))
    if data is None:
        data = SessionData.anonymous()
        setattr(request.state, NEW_SESSION_STATE, data)
    request.state.dashboard_session = data
    return data


BrowserSession = Annotated[SessionData, Depends(browser_session)]


async def current_viewer(request: Request, session: BrowserSession, db: SessionDep) -> Viewer:
    if not session.uid:
        raise SignInRequired
    # The person, their memberships and the accounts' rows in one lookup: the switcher costs no query of its own.
    found = await users.person(db, user_id=session.uid, tenant_id=session.tid or None)
    if found is None or not hmac.compare_digest(session.fp, password_fingerprint(found.user.password_hash)):
        raise SignInRequired  # user deleted, removed from every account, or password changed since sign-in
    if await is_session_revoked(db, sid=session.sid):  # signed out, perhaps on another replica
        raise SignInRequired
    if found.moved:  # removed from the session's account: on to another of theirs, nothing done here
        raise AccountLeft(session.in_account(found.tenant.id))
    user, tenant, role = found.user, found.tenant, found.role
    caller = Caller.signed_in(
        tenant_id=tenant.id,
        user_id=user.id,
        name=user.email,
        role=role,
        client_ip=client_address(request.scope),
        user_agent=request.headers.get("user-agent"),
    )
    viewer = Viewer(user=user, tenant=tenant, session=session, caller=caller, accounts=found.accounts)
    request.state.dashboard_viewer = viewer
    # The navigation's badge: one COUNT per page shown (a POST only redirects), for those who may read alerts (a
    # member's or viewer's ceiling has no ``audit:read``: without this check every page answered them 403).
    if request.method == "GET" and Scope.audit_read in caller.granted:
        request.state.dashboard_open_alerts = await alerts.count_open(db, caller=caller)
    return viewer


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


def verify_csrf(
    session: BrowserSession,
    csrf_token: Annotated[str | None, Form()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> None:
    """The token from the form field ``csrf_token`` or the ``X-CSRF-Token`` header must match the session's."""
    sent = csrf_token or x_csrf_token or ""
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise CsrfFailed


CsrfChecked = Depends(verify_csrf)
