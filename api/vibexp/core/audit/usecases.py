"""The audit trail as the adapters read it: ``audit:read``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, Scope, requires
from vibexp.core.audit import service
from vibexp.core.audit.models import AuditEvent
from vibexp.core.audit.service import ACTIONS
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page

__all__ = ["ACTIONS", "list_events"]


@requires(Scope.audit_read)
async def list_events(
    session: AsyncSession,
    *,
    caller: Caller,
    action: str | None = None,
    key_id: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[AuditEvent]:
    """The account's events, newest first (``service.list_events``)."""
    return await service.list_events(
        session, tenant_id=caller.tenant_id, action=action, key_id=key_id, limit=limit, cursor=cursor
    )
