"""Alerts: the account's open alerts grouped by kind (worst first), each with a human label, a one-line summary,
its severity and its webhook delivery state (the delivery log folded); Acknowledge one, all of a kind, or all.
Each alert names its key's owner, and the "Whose" filter (``?owner=me|service|all``, as the key list's) narrows the
page and what "Acknowledge all" acknowledges. Reading needs ``audit:read`` (admins and owners), as over REST.

Alerts of a revoked key stay open until acknowledged, and the row says the key is revoked: a ``retired_key_used``
alert is about a revoked key by definition, and closing it by itself would hide that the key is still being tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from vibexp.api.dashboard.alert_kinds import AlertKindInfo, describe, summary
from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.routes.keys import OWNER_FILTERS, owner_choice
from vibexp.api.deps import SessionDep
from vibexp.core import access
from vibexp.core.alerts import usecases as alerts
from vibexp.core.alerts.models import Alert, WebhookDelivery
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.models import ApiKey
from vibexp.core.usage import usecases as usage_cases

__all__ = ["AlertGroup", "AlertRow", "router"]

router = APIRouter(prefix="/alerts", route_class=DashboardRoute)

#: A delivery's state as the page's badge: its words and its CSS class.
DELIVERY_BADGES = {
    "delivered": ("Delivered", "badge-active"),
    "pending": ("Pending", "badge-scope badge-full"),
    "failed": ("Failed", "badge-alert"),
}


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert: Alert
    info: AlertKindInfo
    summary: str
    key: ApiKey | None
    deliveries: Sequence[WebhookDelivery]

    @property
    def delivery(self) -> WebhookDelivery | None:
        """The newest delivery: its state is the badge."""
        return self.deliveries[-1] if self.deliveries else None

    @property
    def delivery_badge(self) -> tuple[str, str]:
        latest = self.delivery
        if latest is None:
            return ("Not sent", "badge-revoked")
        words, css = DELIVERY_BADGES.get(latest.state, (latest.state.capitalize(), "badge-revoked"))
        if latest.state == "pending" and latest.attempts:
            words = "Retrying"
        return (words, css)

    @property
    def key_revoked(self) -> bool:
        return self.key is not None and self.key.status == "revoked"


@dataclass(frozen=True, slots=True)
class AlertGroup:
    kind: str
    info: AlertKindInfo
    rows: list[AlertRow]


def _groups(rows: list[AlertRow]) -> list[AlertGroup]:
    """Open alerts by kind, the worst severity first, then by label."""
    by_kind: dict[str, list[AlertRow]] = {}
    for row in rows:
        by_kind.setdefault(row.alert.kind, []).append(row)
    groups = [AlertGroup(kind, describe(kind), items) for kind, items in by_kind.items()]
    return sorted(groups, key=lambda g: (-g.info.severity, g.info.label))


def _owner(choice: str) -> str | None:
    """An ``owner_choice`` as the use cases read it: ``all`` is no filter."""
    return None if choice == "all" else choice


def _page(owner: str, **query: str | int) -> str:
    """The alerts page's URL, keeping the owner filter."""
    params = {**({"owner": owner} if owner != "all" else {}), **query}
    return "/alerts" + (f"?{urlencode(params)}" if params else "")


@router.get("")
async def alerts_page(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    acknowledged: str = "",
    count: int | None = None,
    owner: str = "",
) -> Response:
    # An unknown owner is InvalidInput: the route class answers it with a 422 page.
    chosen = owner_choice(owner)
    items = await alerts.with_deliveries(db, caller=viewer.caller, owner=_owner(chosen))
    by_id = {key.id: key for key in await keys.list_keys(db, caller=viewer.caller, include_deleted=True)}
    rows = [
        AlertRow(i.alert, describe(i.alert.kind), summary(i.alert), by_id.get(i.alert.key_id or ""), i.deliveries)
        for i in items
    ]
    open_rows = [r for r in rows if r.alert.status == "open"]
    # Grants are named from the connected apps (``keys:read``, which whoever reads alerts holds in practice).
    grant_names = {}
    if access.Scope.keys_read in viewer.caller.granted:
        grant_names = await usage_cases.grant_names(
            db, caller=viewer.caller, grant_ids=[i.alert.grant_id for i in items]
        )
    notice: str | None
    if count is not None:
        notice = (
            f"{count} alert{'s' if count != 1 else ''} acknowledged." if count else "No open alerts to acknowledge."
        )
    else:
        notice = "Alert acknowledged." if acknowledged else None
    context = {
        "groups": _groups(open_rows),
        "open_count": len(open_rows),
        "acknowledged_rows": [r for r in rows if r.alert.status != "open"],
        "notice": notice,
        "has_webhook": bool(viewer.tenant.alert_webhook_url),
        # Admins and owners (who may read alerts) see whose each key is, and the filter, as on the key list.
        "manages": access.Scope.members_read in viewer.caller.granted,
        "owner_filters": OWNER_FILTERS,
        "owner": chosen,
        "grant_names": grant_names,
    }
    return render(request, "alerts.html", context)


@router.post("/acknowledge", dependencies=[CsrfChecked])
async def acknowledge_all(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    kind: Annotated[str, Form(max_length=64)] = "",
    owner: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    # No kind: every open alert (of the owner filter's keys). An unknown kind or owner is InvalidInput: the route
    # class answers it with a 422 page.
    chosen = owner_choice(owner)
    done = await alerts.acknowledge_all(db, caller=viewer.caller, kind=kind or None, owner=_owner(chosen))
    return redirect(request, _page(chosen, count=done))


@router.post("/{alert_id}/acknowledge", dependencies=[CsrfChecked])
async def acknowledge(
    request: Request,
    alert_id: str,
    db: SessionDep,
    viewer: CurrentViewer,
    owner: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    # Another account's alert is NotFound: the route class answers it with a 404 page.
    # The viewer's actor is named by the user's e-mail: the alert's acknowledged_by.
    chosen = owner_choice(owner)
    alert = await alerts.acknowledge(db, caller=viewer.caller, alert_id=alert_id)
    return redirect(request, _page(chosen, acknowledged=alert.id))
