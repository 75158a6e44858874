"""Settings → Audit log: the account's management actions, newest first, filterable by key and by action."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import render
from vibexp.api.deps import SessionDep
from vibexp.core.audit import usecases as audit
from vibexp.core.keys import usecases as keys

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)

PAGE_SIZE = 50


@router.get("/settings/audit-log")
async def audit_log(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    key: str = "",
    action: str = "",
    cursor: str = "",
) -> Response:
    # An unknown action or a bad cursor is InvalidInput: the dashboard's route class answers it with a 422 page.
    page = await audit.list_events(
        db,
        caller=viewer.caller,
        action=action or None,
        key_id=key or None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    context = {
        "events": page.items,
        "next_cursor": page.next_cursor,
        "keys": await keys.list_keys(db, caller=viewer.caller, include_deleted=True),  # history stays
        "actions": sorted(audit.ACTIONS),
        "key": key,
        "action": action,
    }
    return render(request, "audit.html", context)
