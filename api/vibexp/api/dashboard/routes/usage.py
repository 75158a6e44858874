"""The overview (``/``) and the account's usage page: tier, hourly limit, use this hour, charts, the requests of the
last 7 days by outcome (failed authentications included), and the action log, filterable (by key or connected app —
the OAuth grants the viewer may see, revoked ones too —, tool, status and, for admins, the key's owner: "Mine /
Service / Everyone's", as the key list's) and paginated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from vibexp.api.dashboard.charts import usage_charts
from vibexp.api.dashboard.deps import CurrentViewer, Viewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import render
from vibexp.api.dashboard.routes.keys import OWNER_FILTERS, expiring_soon, owner_choice, rotating
from vibexp.api.deps import RuntimeDep, SessionDep
from vibexp.core import access
from vibexp.core.alerts import usecases as alerts
from vibexp.core.clock import utcnow
from vibexp.core.keys import usecases as keys
from vibexp.core.oauth import usecases as oauth
from vibexp.core.pagination import MAX_PAGE_SIZE
from vibexp.core.usage import usecases as usage_cases
from vibexp.core.usage.outcomes import OUTCOMES, outcome_of, parse_outcome
from vibexp.core.usage.tool_names import TOOL_NAMES, tool_name

__all__ = ["PAGE_SIZE", "router"]

router = APIRouter(route_class=DashboardRoute)

PAGE_SIZE = 50
#: The window of the breakdown by outcome.
OUTCOME_DAYS = 7


async def _account(viewer: Viewer, runtime: RuntimeDep) -> dict[str, Any]:
    limit = viewer.tenant.hourly_limit
    used = await runtime.limiter.current_use(tenant_id=viewer.tenant.id)
    return {
        "tier": viewer.tenant.tier,
        "limit": limit,
        "used": used,
        "remaining": max(0, limit - used),
        "percent": min(100.0, round(100 * used / limit, 1)) if limit else 0.0,
        "suspended": viewer.tenant.suspended,
    }


@router.get("/")
async def overview(request: Request, db: SessionDep, viewer: CurrentViewer, runtime: RuntimeDep) -> Response:
    records = await keys.list_keys(db, caller=viewer.caller)
    active = [k for k in records if k.status == "active"]
    last_used = max((k.last_used_at for k in records if k.last_used_at), default=None)
    context = {
        "account": await _account(viewer, runtime),
        "active_keys": len(active),
        "expiring": expiring_soon(active),
        "rotating": rotating(active),
        "last_used": last_used,
        "base_url": str(request.base_url).rstrip("/"),
    }
    return render(request, "overview.html", context)


@router.get("/usage")
async def usage(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    runtime: RuntimeDep,
    key: str = "",
    tool: str = "",
    status: str = "",
    owner: str = "",
    cursor: str = "",
) -> Response:
    # An unknown tool, status or owner, or a bad cursor, is InvalidInput: the route class answers it with a 422 page.
    outcome = parse_outcome(status) if status else None
    whose = owner_choice(owner)
    records = await keys.list_keys(db, caller=viewer.caller, include_deleted=True)  # old actions keep their key
    # The connected apps, revoked ones too (old actions keep their grant): a member's or viewer's own, as the use case
    # decides; the newest page of them (the filter still takes any grant's id by URL).
    grants = await oauth.list_grants(db, caller=viewer.caller, limit=MAX_PAGE_SIZE)
    page = await usage_cases.list_actions(
        db,
        caller=viewer.caller,
        key_id=key or None,
        tool_type=tool or None,
        outcome=outcome,
        owner=None if whose == "all" else whose,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    since = utcnow() - timedelta(days=OUTCOME_DAYS)
    counts = await usage_cases.outcome_counts(db, caller=viewer.caller, since=since)
    # Counted from the alerts: for those who may read them (a member's or viewer's page has no such count).
    failed_auth = None
    if access.Scope.audit_read in viewer.caller.granted:
        failed_auth = await alerts.failed_authentications(db, caller=viewer.caller, since=since)
    filters = {"key": key, "tool": tool, "status": status, "owner": "" if whose == "all" else whose}
    next_url = None
    if page.next_cursor:
        next_url = "/usage?" + urlencode({**{k: v for k, v in filters.items() if v}, "cursor": page.next_cursor})
    context = {
        "account": await _account(viewer, runtime),
        "keys": sorted((k for k in records if k.deleted_at is None), key=lambda k: -k.request_count),
        "all_keys": records,
        "all_grants": grants.items,
        "key_names": {k.id: k.name for k in records},
        "grant_names": await usage_cases.grant_names(
            db, caller=viewer.caller, grant_ids=[action.grant_id for action in page.items]
        ),
        "charts": await usage_charts(db, caller=viewer.caller),
        "actions": page.items,
        "next_url": next_url,
        "paged": bool(cursor),
        "filters": filters,
        "filtered": any(filters.values()),
        # Admins and owners see the owner filter, as on the key list (a member's actions are their own keys' anyway).
        "manages": access.Scope.members_read in viewer.caller.granted,
        "owner_filters": OWNER_FILTERS,
        "outcomes": OUTCOMES,
        "outcome_counts": counts,
        "outcome_total": sum(counts.values()),
        "outcome_days": OUTCOME_DAYS,
        "failed_auth": failed_auth,
        "outcome_of": outcome_of,
        "tools": TOOL_NAMES,
        "tool_name": tool_name,
        "countries": await usage_cases.countries(db, caller=viewer.caller),
    }
    return render(request, "usage.html", context)
