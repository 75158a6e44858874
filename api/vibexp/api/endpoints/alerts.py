"""Alerts over REST: ``GET /api/v1/alerts`` (newest first) and ``POST /api/v1/alerts/{id}/acknowledge``.

The scopes (``audit:read`` to list, ``alerts:write`` to acknowledge) are checked in ``vibexp.core.alerts.usecases``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from vibexp.api.deps import CurrentCaller, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.endpoints.keys import OWNER_FILTER
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.schemas import PageRead
from vibexp.core.alerts import usecases as alerts
from vibexp.core.alerts.models import AlertKind, AlertStatus
from vibexp.core.alerts.schemas import AlertRead
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, PageCursor, PageSize

__all__ = ["alerts_router"]

alerts_router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"], responses=ERROR_RESPONSES)


@alerts_router.get("", response_model=PageRead[AlertRead], summary="The account's alerts, newest first")
async def list_alerts(
    session: SessionDep,
    caller: CurrentCaller,
    status: Annotated[AlertStatus | None, Query(description="open or acknowledged")] = None,
    kind: Annotated[AlertKind | None, Query(description="Only this kind")] = None,
    key_id: Annotated[
        str | None, Query(max_length=36, description="Only alerts on this credential: an API key's or a grant's id")
    ] = None,
    owner: Annotated[str | None, Query(max_length=254, description=OWNER_FILTER)] = None,
    limit: Annotated[PageSize, Query(description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[PageCursor | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    page = await alerts.list_alerts(
        session, caller=caller, status=status, kind=kind, key_id=key_id, owner=owner, limit=limit, cursor=cursor
    )
    return {"items": [AlertRead.model_validate(alert) for alert in page.items], "next_cursor": page.next_cursor}


@alerts_router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertRead,
    summary="Acknowledge an alert (idempotent); the next time its kind is noticed on the key, a new alert opens",
)
async def acknowledge_alert(
    session: SessionDep,
    caller: CurrentCaller,
    alert_id: Annotated[str, Path(max_length=36)],
) -> Any:
    alert = await alerts.acknowledge(session, caller=caller, alert_id=alert_id)
    return AlertRead.model_validate(alert)
