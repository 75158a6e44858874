"""The audit trail over REST: ``GET /api/v1/audit-events``, newest first (``audit:read``, checked in
``vibexp.core.audit.usecases``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from vibexp.api.deps import CurrentCaller, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.schemas import PageRead
from vibexp.core.audit import usecases as audit
from vibexp.core.audit.schemas import AuditEventRead
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, PageCursor, PageSize

__all__ = ["audit_router"]

audit_router = APIRouter(prefix=f"{API_PREFIX}/audit-events", tags=["audit"], responses=ERROR_RESPONSES)


@audit_router.get("", response_model=PageRead[AuditEventRead], summary="The account's audit trail, newest first")
async def list_audit_events(
    session: SessionDep,
    caller: CurrentCaller,
    action: Annotated[str | None, Query(max_length=64, description="Only this action, e.g. key.revoked")] = None,
    key_id: Annotated[str | None, Query(max_length=36, description="Only events by or on this key")] = None,
    limit: Annotated[PageSize, Query(description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[PageCursor | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    page = await audit.list_events(session, caller=caller, action=action, key_id=key_id, limit=limit, cursor=cursor)
    return {"items": [AuditEventRead.model_validate(event) for event in page.items], "next_cursor": page.next_cursor}
