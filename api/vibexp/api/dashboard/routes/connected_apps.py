"""Settings → Connected apps: the OAuth grants people gave tools (Claude, VS Code, Cursor …) through the consent
page — client, "unverified" for a registered client, redirect host, owner (for admins), scopes, created, last used,
requests, whether it asks before deleting (``confirm_destructive``, toggled in place) — and Revoke, confirmed in the
browser (``data-confirm``); each a POST with the CSRF token, then a redirect back (PRG).

Everything goes through ``vibexp.core.oauth.usecases`` with the signed-in viewer's ``Caller``: a grant is a
credential like a personal key, so the page needs ``keys:read`` and revoking ``keys:write`` (every role's ceiling
holds both); members and viewers see and revoke their own grants only, admins and owners everyone's ("Whose").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.deps import SessionDep
from vibexp.api.oauth.urls import public_base, resource_url
from vibexp.api.settings import ApiSettings
from vibexp.core.access import Scope
from vibexp.core.errors import Conflict, InvalidInput
from vibexp.core.oauth import usecases as oauth
from vibexp.core.pagination import DEFAULT_PAGE_SIZE

__all__ = ["OWNER_FILTERS", "PAGE_SIZE", "STATUS_FILTERS", "router"]

router = APIRouter(route_class=DashboardRoute)
PAGE = "/settings/connected-apps"
TEMPLATE = "settings/connected_apps.html"
#: The list's tabs: the query's ``status`` → the use case's ``active`` (``None``: every grant).
STATUS_FILTERS: dict[str, bool | None] = {"active": True, "revoked": False, "all": None}
#: An admin's "Whose" choice (a grant is always a person's: no "Service" as on the keys page).
OWNER_FILTERS: dict[str, str] = {"me": "Mine", "all": "Everyone's"}
#: Connected apps a page shows ("Older connected apps" follows the cursor).
PAGE_SIZE = DEFAULT_PAGE_SIZE
REVOKED_NOTICE = "Connected app revoked: its tokens stop working within a second, on every server."
#: After the "Before deleting" toggle (``?confirm=on`` / ``off``).
CONFIRM_NOTICES = {
    "on": "The app now asks you before it deletes or replaces anything (within a second, on every server).",
    "off": "The app no longer asks before it deletes or replaces anything.",
}


def _connect_url(request: Request) -> str:
    """The MCP address a tool connects to by OAuth (the empty state's): the public URL's, else this request's."""
    settings: ApiSettings = request.app.state.runtime.settings
    return resource_url(public_base(request.scope, settings))


@router.get(PAGE)
async def connected_apps_page(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    status: str = "active",
    owner: str = "",
    cursor: str = "",
) -> Response:
    # An unknown filter or a bad cursor is InvalidInput: the dashboard's route class answers it with a 422 page.
    if status not in STATUS_FILTERS:
        raise InvalidInput("Show active, revoked or all connected apps.")
    owner = owner or "all"
    if owner not in OWNER_FILTERS:
        raise InvalidInput("Show your connected apps or everyone's.")
    manages = Scope.members_read in viewer.caller.granted  # admins and owners: the owner column and filter
    page = await oauth.list_grants(
        db,
        caller=viewer.caller,
        owner=None if owner == "all" else owner,
        active=STATUS_FILTERS[status],
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    context: dict[str, Any] = {
        "grants": page.items,
        "next_cursor": page.next_cursor,
        "status": status,
        "owner": owner,
        "owner_filters": OWNER_FILTERS,
        "manages": manages,
        "me": viewer.user.id,
        "connect_url": _connect_url(request),
        "notice": (
            REVOKED_NOTICE
            if request.query_params.get("revoked") == "1"
            else CONFIRM_NOTICES.get(request.query_params.get("confirm", ""))
        ),
    }
    return render(request, TEMPLATE, context)


@router.post(PAGE + "/{grant_id}/revoke", dependencies=[CsrfChecked])
async def revoke(request: Request, grant_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    """Revoke a connected app (another person's, for a member, is the 404 page); a second press finds it revoked
    already and lands on the list all the same."""
    try:
        await oauth.revoke_grant(db, caller=viewer.caller, grant_id=grant_id)
    except Conflict:
        return redirect(request, PAGE + "?status=revoked")
    return redirect(request, PAGE + "?revoked=1")


@router.post(PAGE + "/{grant_id}/confirm", dependencies=[CsrfChecked])
async def set_confirm(
    request: Request,
    grant_id: str,
    db: SessionDep,
    viewer: CurrentViewer,
    confirm_destructive: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Turn "ask before deleting" on (``true``) or off (``false``); anything else is the 422 page, another person's
    grant (for a member) the 404 page, a revoked one the list of revoked apps."""
    if confirm_destructive not in ("true", "false"):
        raise InvalidInput("Choose whether the app asks first: true or false.")
    wanted = confirm_destructive == "true"
    try:
        await oauth.update_grant(db, caller=viewer.caller, grant_id=grant_id, confirm_destructive=wanted)
    except Conflict:
        return redirect(request, PAGE + "?status=revoked")
    return redirect(request, PAGE + ("?confirm=on" if wanted else "?confirm=off"))
