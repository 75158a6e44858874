"""Settings → Members: the account's people (e-mail, role, joined, last seen, key count), invitations (the link is
shown once, in the answer to the POST that made it), role changes, removal (confirmed), and revoking a pending
invitation; and ``/join``, the page an invitation link opens.

Every action goes through ``vibexp.core.members.usecases`` with the signed-in viewer's ``Caller``: the use cases
check the scope (``members:read``/``members:write``: only admins' and owners' ceilings hold them, so a member or
viewer gets the 403 page) and the role rules (nobody above their own role, nobody changes their own role).

``/join``: the link carries the token in the fragment (``/join#vibinv_…``), which no server or access log sees;
``app.js`` copies it into the form's hidden-by-default token field, which can also be pasted into by hand. The form
signs the invited e-mail's user in with their password, or creates the user with it, accepts the invitation, and
starts a dashboard session in the account joined (for someone already signed in, the same session switches to it).
Post/redirect/get: the answer is a redirect to the overview, so a reload there repeats nothing; the same person
sending the used link again (a second press, a resubmitted form) is taken to the account rather than shown an error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from vibexp.api.dashboard.deps import BrowserSession, CsrfChecked, CurrentViewer, Viewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.sessions import SessionData, password_fingerprint
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.api.endpoints.members import accept_throttle
from vibexp.api.errors import status_for
from vibexp.api.middleware.client_address import client_address
from vibexp.core.access import ROLE_NAMES, Role, Scope
from vibexp.core.config import get_settings
from vibexp.core.errors import AlreadyExists, Conflict, InvalidInput, VibeXPError
from vibexp.core.members import usecases as members
from vibexp.core.members.schemas import JOIN_PAGE, invitation_link

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)
PAGE = "/settings/members"
TEMPLATE = "settings/members.html"
JOIN_TEMPLATE = "join.html"


async def _page(request: Request, db: AsyncSession, viewer: Viewer, *, status: int = 200, **extra: Any) -> Response:
    caller = viewer.caller
    context: dict[str, Any] = {
        "members": await members.list_members(db, caller=caller),
        "invitations": await members.list_invitations(db, caller=caller),
        "can_manage": Scope.members_write in caller.granted,
        "roles": [name for name in ROLE_NAMES if caller.role is None or Role(name).rank <= Role(caller.role).rank],
        "me": viewer.user.id,
        "notice": None,
        "error": None,
        "link": None,
        "email": "",
        **extra,
    }
    return render(request, TEMPLATE, context, status=status)


def _role(value: str) -> Role | None:
    return Role(value) if value in ROLE_NAMES else None


@router.get(PAGE)
async def members_page(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
    return await _page(request, db, viewer)


@router.post(f"{PAGE}/invite", dependencies=[CsrfChecked])
async def invite(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    email: Annotated[str, Form(max_length=254)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Make an invitation and show its link once, in this answer (it is kept nowhere but as a hash)."""
    chosen = _role(role)
    if "@" not in email.strip() or chosen is None:
        return await _page(
            request, db, viewer, status=422, email=email, error="Enter the e-mail to invite and choose a role."
        )
    try:
        new = await members.invite(db, caller=viewer.caller, email=email.strip(), role=chosen)
    except (AlreadyExists, Conflict, InvalidInput) as exc:
        return await _page(request, db, viewer, status=409, email=email, error=exc.message)
    link = invitation_link(get_settings().public_url, new.token)
    notice = f"Invitation for {new.record.email} made. Send them this link: it is shown only now."
    response = await _page(request, db, viewer, notice=notice, link=link)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(PAGE + "/{user_id}/role", dependencies=[CsrfChecked])
async def change_role(
    request: Request,
    user_id: str,
    db: SessionDep,
    viewer: CurrentViewer,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    chosen = _role(role)
    if chosen is None:
        return await _page(request, db, viewer, status=422, error="Choose a role.")
    await members.change_role(db, caller=viewer.caller, user_id=user_id, role=chosen)
    return redirect(request, PAGE)


@router.post(PAGE + "/{user_id}/remove", dependencies=[CsrfChecked])
async def remove(request: Request, user_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    """Remove a member (their personal keys are revoked with them); confirmed in the browser (``data-confirm``)."""
    await members.remove(db, caller=viewer.caller, user_id=user_id)
    return redirect(request, "/login" if user_id == viewer.user.id else PAGE)


@router.post(PAGE + "/invitations/{invitation_id}/revoke", dependencies=[CsrfChecked])
async def revoke_invitation(request: Request, invitation_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    await members.revoke_invitation(db, caller=viewer.caller, invitation_id=invitation_id)
    return redirect(request, PAGE)


@router.get(JOIN_PAGE)
async def join_page(request: Request, session: BrowserSession) -> Response:
    return render(request, JOIN_TEMPLATE, {"error": None, "token": ""})


@router.post(JOIN_PAGE, dependencies=[CsrfChecked])
async def join(
    request: Request,
    db: SessionDep,
    session: BrowserSession,
    token: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    token = token.strip().rpartition("#")[2]  # the whole link pasted, or only its token
    if not token or not password:
        error = "Paste the invitation link (or its token) and enter a password."
        return render(request, JOIN_TEMPLATE, {"error": error, "token": token}, status=422)
    address = client_address(request.scope) or "unknown"
    throttle = accept_throttle(request)
    wait = throttle.retry_after(address)
    if wait:
        error = f"Too many invitation attempts from this address: try again in {wait} s."
        response = render(request, JOIN_TEMPLATE, {"error": error, "token": token}, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    throttle.failed(address)
    try:
        user, membership, _ = await members.accept_invitation(
            db,
            token=token,
            password=password,
            signed_in_user_id=session.uid or None,
            client_ip=address,
            user_agent=request.headers.get("user-agent"),
        )
    except VibeXPError as exc:
        await db.rollback()
        again = (
            await members.joined_through(db, token=token, user_id=session.uid)
            if session.uid and exc.code == "invalid_invitation"
            else None
        )
        if again is not None:  # this person used this link already: take them there
            return _joined(request, session.in_account(again))
        return render(request, JOIN_TEMPLATE, {"error": exc.message, "token": token}, status=status_for(exc))
    tenant_id = membership.tenant_id
    if session.uid == user.id:  # already signed in as them: the same session, now in the account joined
        return _joined(request, session.in_account(tenant_id))
    fingerprint = password_fingerprint(user.password_hash)
    return _joined(request, SessionData.for_user(user_id=user.id, fingerprint=fingerprint, tenant_id=tenant_id))


def _joined(request: Request, session: SessionData) -> Response:
    """To the overview of the account joined, the session set for it (a redirect: a reload repeats nothing)."""
    response = redirect(request, "/?notice=joined")
    dashboard_state(request).signer.set_cookie(response, session)
    return response
