"""The overview (``/``) and the account's usage page: tier, hourly limit, use this hour, charts, actions log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vibexp.api.dashboard.charts import usage_charts
from vibexp.api.dashboard.deps import CurrentViewer, Viewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import render
from vibexp.api.dashboard.routes.keys import expiring_soon, rotating
from vibexp.api.deps import RuntimeDep, SessionDep
from vibexp.core.keys import usecases as keys
from vibexp.core.usage.usecases import countries as usage_countries
from vibexp.core.usage.usecases import recent_actions

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)


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
async def usage(request: Request, db: SessionDep, viewer: CurrentViewer, runtime: RuntimeDep) -> Response:
    records = await keys.list_keys(db, caller=viewer.caller)
    names = {k.id: k.name for k in records}
    context = {
        "account": await _account(viewer, runtime),
        "keys": sorted(records, key=lambda k: -k.request_count),
        "charts": await usage_charts(db, caller=viewer.caller),
        "actions": await recent_actions(db, caller=viewer.caller, limit=50),
        "countries": await usage_countries(db, caller=viewer.caller),
        "key_names": names,
    }
    return render(request, "usage.html", context)
