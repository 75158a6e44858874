"""Alerts: the account's open and acknowledged alerts, each with its webhook delivery log, and Acknowledge."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.deps import SessionDep
from vibexp.core.alerts import usecases as alerts
from vibexp.core.alerts.overview import alerts_with_deliveries
from vibexp.core.keys import usecases as keys

__all__ = ["router"]

router = APIRouter(prefix="/alerts", route_class=DashboardRoute)


@router.get("")
async def alerts_page(request: Request, db: SessionDep, viewer: CurrentViewer, acknowledged: str = "") -> Response:
    items = await alerts_with_deliveries(db, tenant_id=viewer.tenant.id)
    context = {
        "open_items": [i for i in items if i.alert.status == "open"],
        "acknowledged_items": [i for i in items if i.alert.status != "open"],
        "just_acknowledged": acknowledged,
        "has_webhook": bool(viewer.tenant.alert_webhook_url),
        "keys": {key.id: key for key in await keys.list_keys(db, caller=viewer.caller, include_deleted=True)},
    }
    return render(request, "alerts.html", context)


@router.post("/{alert_id}/acknowledge", dependencies=[CsrfChecked])
async def acknowledge(request: Request, alert_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    # Another account's alert is NotFound: the route class answers it with a 404 page.
    # The viewer's actor is named by the user's e-mail: the alert's acknowledged_by.
    alert = await alerts.acknowledge(db, caller=viewer.caller, alert_id=alert_id)
    return redirect(request, f"/alerts?acknowledged={alert.id}")
