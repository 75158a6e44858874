"""Usage as the adapters read it (REST ``/api-keys/{id}/usage``, the dashboard's usage pages): ``keys:read``.

A member or viewer (``Caller.sees_only_own_keys``) reads the usage of their own keys and OAuth grants only, in every
answer here (the account's counts, charts, countries and actions), as the key list shows them their own keys only.
An OAuth grant's requests are in the account's answers beside the keys' (its action-log rows name ``grant_id``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, Scope, requires
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.schemas import CountryCount, KeyUsageRead
from vibexp.core.oauth import usecases as oauth
from vibexp.core.pagination import Page
from vibexp.core.usage import action_log, service
from vibexp.core.usage.action_log import GrantName
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.outcomes import Outcome
from vibexp.core.usage.schemas import GrantUsageRead
from vibexp.core.usage.service import HourlyCount, key_usage

__all__ = [
    "HourlyCount",
    "countries",
    "grant_names",
    "hourly_counts",
    "list_actions",
    "of_grant",
    "of_key",
    "outcome_counts",
    "recent_actions",
]


@requires(Scope.keys_read)
async def of_key(
    session: AsyncSession, *, caller: Caller, key_id: str, limit: int = 50, include_deleted: bool = False
) -> KeyUsageRead:
    """The key's counts and its most recent ``limit`` actions (a deleted key's history stays readable by id); a
    member's or viewer's own keys only (``keys.get``)."""
    key = await keys.get(session, caller=caller, key_id=key_id, include_deleted=include_deleted)
    return await key_usage(session, key=key, limit=limit)


@requires(Scope.keys_read)
async def of_grant(session: AsyncSession, *, caller: Caller, grant_id: str, limit: int = 50) -> GrantUsageRead:
    """An OAuth grant's counts and its most recent ``limit`` actions (a revoked grant's too); a member's or viewer's
    own grants only (``oauth.get_grant``)."""
    view = await oauth.get_grant(session, caller=caller, grant_id=grant_id)
    return await service.grant_usage(session, grant=view.grant, limit=limit)


async def _own_keys(session: AsyncSession, caller: Caller) -> str | None:
    """A member's or viewer's own keys (their user id); ``None`` (every key) for whoever manages everyone's."""
    return await keys.owner_filter(session, caller=caller, owner=None)


@requires(Scope.keys_read)
async def recent_actions(session: AsyncSession, *, caller: Caller, limit: int = 50) -> list[KeyAction]:
    """The account's most recent actions, newest first, over all its keys."""
    return await service.recent_actions(
        session, tenant_id=caller.tenant_id, owner=await _own_keys(session, caller), limit=limit
    )


@requires(Scope.keys_read)
async def hourly_counts(
    session: AsyncSession, *, caller: Caller, hours: int, key_id: str | None = None
) -> list[HourlyCount]:
    """Requests per UTC hour for the last ``hours`` hours, the account's or one key's (oldest first)."""
    return await service.hourly_counts(
        session, tenant_id=caller.tenant_id, hours=hours, key_id=key_id, owner=await _own_keys(session, caller)
    )


@requires(Scope.keys_read)
async def list_actions(
    session: AsyncSession,
    *,
    caller: Caller,
    key_id: str | None = None,
    tool_type: str | None = None,
    outcome: Outcome | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[KeyAction]:
    """The account's actions, newest first, filtered by key, tool, outcome and the key's owner (``owner`` as the key
    list reads it: ``me``, ``service``, an e-mail or a user id; a member's or viewer's are always their own keys'); a
    bad tool or cursor is InvalidInput."""
    return await action_log.list_actions(
        session,
        tenant_id=caller.tenant_id,
        key_id=key_id,
        tool_type=tool_type,
        outcome=outcome,
        owner=await keys.owner_filter(session, caller=caller, owner=owner),
        limit=limit,
        cursor=cursor,
    )


@requires(Scope.keys_read)
async def grant_names(
    session: AsyncSession, *, caller: Caller, grant_ids: Iterable[str | None]
) -> dict[str, GrantName]:
    """The account's OAuth grants among ``grant_ids`` (of rows the caller was shown: actions, alerts), by id: the
    client's name ("<client> (OAuth)") and the person's e-mail."""
    return await action_log.grant_names(session, tenant_id=caller.tenant_id, grant_ids=grant_ids)


@requires(Scope.keys_read)
async def outcome_counts(
    session: AsyncSession, *, caller: Caller, since: datetime, key_id: str | None = None
) -> dict[Outcome, int]:
    """The account's actions since ``since`` by outcome."""
    own = await _own_keys(session, caller)
    return await action_log.outcome_counts(session, tenant_id=caller.tenant_id, since=since, key_id=key_id, owner=own)


@requires(Scope.keys_read)
async def countries(session: AsyncSession, *, caller: Caller, key_id: str | None = None) -> list[CountryCount]:
    """The registered countries the account's (or one key's) recent actions came from, most requests first."""
    own = await _own_keys(session, caller)
    return await service.country_counts(session, tenant_id=caller.tenant_id, key_id=key_id, owner=own)
