"""Settings → Alerts: where alerts are sent (the webhook and its signing secret), the working hours that
``after_hours`` watches, and the alert kinds that revoke the key at once (``auto_revoke_on``).

Admins and owners change them (``vibexp.core.account.update_alert_settings``: the scope ``alerts:write`` of their
role); a member or viewer gets the 403 page, as on the alerts page. The secret is write-only: the page says whether
one is set, never what it is, and an empty field keeps it. An empty webhook URL removes the webhook and its secret.
Every error is shown at once, listed above the form and beside its field; the form keeps what was typed (never
the secret).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from vibexp.api.dashboard.alert_kinds import describe
from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer, Viewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.deps import SessionDep
from vibexp.core import account
from vibexp.core.access import Scope, require
from vibexp.core.alerts.models import AUTO_REVOCABLE
from vibexp.core.errors import InvalidInput
from vibexp.core.tenants.schemas import TenantUpdate

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute)
PAGE = "/settings/alerts"
TEMPLATE = "settings/alerts.html"
#: What the kinds are called on this page, in the order the form lists them.
#: The form's field for each tenant field an error names.
FIELDS = {"alert_webhook_url": "webhook_url", "alert_webhook_secret": "webhook_secret"}
KINDS = [(kind.value, describe(kind.value).label) for kind in AUTO_REVOCABLE]


def _page(request: Request, viewer: Viewer, *, status: int = 200, **extra: Any) -> Response:
    tenant = viewer.tenant
    context: dict[str, Any] = {
        "kinds": KINDS,
        "webhook_url": tenant.alert_webhook_url or "",
        "has_secret": tenant.alert_webhook_secret is not None,
        "working_hours": tenant.working_hours or "",
        "auto_revoke_on": set(tenant.auto_revoke_on or []),
        "saved": request.query_params.get("saved") == "1",
        "errors": {},
        **extra,
    }
    return render(request, TEMPLATE, context, status=status)


@router.get(PAGE)
async def alert_settings_page(request: Request, viewer: CurrentViewer) -> Response:
    require(viewer.caller, Scope.alerts_write)  # the 403 page for members and viewers
    return _page(request, viewer)


@router.post(PAGE, dependencies=[CsrfChecked])
async def save_alert_settings(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    webhook_url: Annotated[str, Form(max_length=10_000)] = "",
    webhook_secret: Annotated[str, Form(max_length=10_000)] = "",
    working_hours: Annotated[str, Form(max_length=10_000)] = "",
    auto_revoke_on: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    url, secret, hours = webhook_url.strip(), webhook_secret.strip(), working_hours.strip()
    changes: dict[str, Any] = {
        "alert_webhook_url": url or None,
        "working_hours": hours or None,
        "auto_revoke_on": list(dict.fromkeys(auto_revoke_on or [])),
    }
    if not url:
        changes["alert_webhook_secret"] = None  # no webhook, no secret to sign it with
    elif secret:
        changes["alert_webhook_secret"] = secret
    data = TenantUpdate(**changes)
    errors = await account.alert_settings_errors(db, caller=viewer.caller, data=data)
    if not errors:
        try:
            await account.update_alert_settings(db, caller=viewer.caller, data=data)
        except InvalidInput as exc:  # checked before anything is stored: nothing to undo
            errors = {"alert_webhook_url": exc.message}
    if errors:
        errors = {FIELDS.get(field, field): message for field, message in errors.items()}
        typed = {"webhook_url": url, "working_hours": hours, "auto_revoke_on": set(changes["auto_revoke_on"])}
        return _page(request, viewer, status=422, errors=errors, **typed)
    return redirect(request, f"{PAGE}?saved=1")
