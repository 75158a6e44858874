"""Record and list audit events.

Every management action goes through ``record`` with the session of the change itself, so the event and the change
commit or roll back together: there is no audit row for a change that did not happen, and no change without its
row. The adapters say who acted (``Actor``): a dashboard user, an API key, the CLI's operating-system user, the
operator (the Kubernetes object it reconciled) or the system itself (a leak report, a policy).

Plaintext keys never reach the trail: ``record`` replaces anything key-shaped (a whole key or the remainder of one,
``vibexp.core.redaction.mask_keys``) in every text it stores (``details``, the user agent, the actor's and the
target's names) by its display prefix, before any of them is cut to its column's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, ActorType
from vibexp.core.audit.models import AuditEvent
from vibexp.core.errors import InvalidInput
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page, decode_cursor, encode_cursor
from vibexp.core.redaction import mask_keys

__all__ = ["ACTIONS", "Target", "expired", "list_events", "record"]

#: Every action the trail records (``?action=`` accepts only these).
ACTIONS = frozenset(
    {
        "key.created",
        "key.rotated",
        "key.revoked",
        "key.leaked",
        "key.expired",
        "key.auto_revoked",
        "key.suspended",
        "key.resumed",
        "key.permissions_changed",
        "key.deleted",
        "tenant.created",
        "tenant.updated",
        "user.created",
        "member.invited",
        "member.joined",
        "member.role_changed",
        "member.removed",
        "invitation.revoked",
        "user.signed_in",
        "user.sign_in_failed",
        "prompt.deleted",
        "prompt.label_moved",
        "prompt.label_removed",
        "content.imported",
        "content.exported",
        "artifact.deleted",
        "memory.deleted",
        "alert.raised",
        "alert.acknowledged",
        "oauth.client_registered",
        "oauth.granted",
        "oauth.revoked",
        "oauth.updated",
    }
)

_MAX_USER_AGENT = 300


@dataclass(frozen=True, slots=True)
class Target:
    """What was acted on: ``key``, ``tenant``, ``user``, ``prompt``, ``artifact``, ``memory`` or ``alert``."""

    type: str
    id: str | None = None
    name: str = ""


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return mask_keys(value)
    if isinstance(value, dict):
        return {mask_keys(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


async def record(
    session: AsyncSession,
    *,
    tenant_id: str,
    action: str,
    actor: Actor,
    target: Target | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add the event to the session's transaction (flushed with the change it records)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        tenant_id=tenant_id,
        action=action,
        actor_type=actor.type.value,
        actor_id=actor.id,
        actor_name=mask_keys(actor.name)[:255],
        target_type=target.type if target else None,
        target_id=target.id if target else None,
        target_name=mask_keys(target.name if target else "")[:255],
        client_ip=actor.client_ip,
        user_agent=mask_keys(actor.user_agent)[:_MAX_USER_AGENT] if actor.user_agent else None,
        details=_redacted(details or {}),
    )
    session.add(event)
    await session.flush()
    return event


async def list_events(
    session: AsyncSession,
    *,
    tenant_id: str,
    action: str | None = None,
    key_id: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[AuditEvent]:
    """The tenant's events, newest first; ``key_id`` matches the key as the actor or as the target."""
    if action is not None and action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; one of: {', '.join(sorted(ACTIONS))}")
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if key_id is not None:
        by_key = (AuditEvent.actor_type == ActorType.api_key.value) & (AuditEvent.actor_id == key_id)
        on_key = (AuditEvent.target_type == "key") & (AuditEvent.target_id == key_id)
        query = query.where(or_(by_key, on_key))
    if cursor:
        query = query.where(AuditEvent.id < decode_cursor(cursor))
    rows = list(await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def expired(*, before: datetime) -> Delete:
    """The statement that drops events older than ``before``; the usage recorder's periodic prune runs it, with
    ``VIBEXP_AUDIT_RETENTION_DAYS``."""
    return delete(AuditEvent).where(AuditEvent.at < before)
