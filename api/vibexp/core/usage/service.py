"""Reading usage back: per-key summary with recent actions and countries, and hourly request counts for charts.
``owner`` (where taken) keeps one person's keys and OAuth grants (a user id) or the service keys
(``keys.service.SERVICE_KEYS``); ``key_id`` (where taken) is a key's or a grant's id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.clock import utcnow
from vibexp.core.keys.models import ApiKey
from vibexp.core.keys.schemas import ClientUse, CountryCount, KeyUsageRead, UsageAction
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.usage.action_log import of_credential, owned_by
from vibexp.core.usage.actions import shown
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.schemas import GrantUsageRead

__all__ = ["HourlyCount", "country_counts", "grant_usage", "hourly_counts", "key_usage", "recent_actions"]


@dataclass(frozen=True, slots=True)
class HourlyCount:
    hour: datetime
    requests: int


async def recent_actions(
    session: AsyncSession, *, tenant_id: str, key_id: str | None = None, owner: str | None = None, limit: int = 50
) -> list[KeyAction]:
    """The most recent actions, newest first: what the key did, not MCP protocol set-up (``actions``)."""
    query = select(KeyAction).where(KeyAction.tenant_id == tenant_id, shown())
    if key_id is not None:
        query = query.where(of_credential(key_id))
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    return list(await session.scalars(query.order_by(KeyAction.id.desc()).limit(limit)))


async def key_usage(session: AsyncSession, *, key: ApiKey, limit: int = 50) -> KeyUsageRead:
    actions = await recent_actions(session, tenant_id=key.tenant_id, key_id=key.id, limit=limit)
    return KeyUsageRead(
        clients=await clients_of(session, tenant_id=key.tenant_id, credential_id=key.id),
        key_id=key.id,
        request_count=key.request_count,
        last_used_at=key.last_used_at,
        tool_type=key.tool_type,
        last_ip=key.last_ip,
        countries=await country_counts(session, tenant_id=key.tenant_id, key_id=key.id),
        actions=[UsageAction.model_validate(a) for a in actions],
    )


async def grant_usage(session: AsyncSession, *, grant: OAuthGrant, limit: int = 50) -> GrantUsageRead:
    """An OAuth grant's counts, clients, countries and most recent ``limit`` actions, as ``key_usage`` a key's."""
    actions = await recent_actions(session, tenant_id=grant.tenant_id, key_id=grant.id, limit=limit)
    return GrantUsageRead(
        grant_id=grant.id,
        request_count=grant.request_count,
        last_used_at=grant.last_used_at,
        clients=await clients_of(session, tenant_id=grant.tenant_id, credential_id=grant.id),
        countries=await country_counts(session, tenant_id=grant.tenant_id, key_id=grant.id),
        actions=[UsageAction.model_validate(a) for a in actions],
    )


async def clients_of(session: AsyncSession, *, tenant_id: str, credential_id: str) -> list[ClientUse]:
    """Every client (tool type) that used the key or grant within the action log's retention, most recent first: a
    key shared by Claude Code and Cursor shows both, not only the last one (``ApiKey.tool_type``)."""
    last = func.max(KeyAction.at)
    query = (
        select(KeyAction.tool_type, func.count(), last)
        .where(KeyAction.tenant_id == tenant_id, of_credential(credential_id))
        .group_by(KeyAction.tool_type)
        .order_by(last.desc(), KeyAction.tool_type)
    )
    return [
        ClientUse(tool_type=tool, requests=count, last_used_at=at) for tool, count, at in await session.execute(query)
    ]


async def country_counts(
    session: AsyncSession, *, tenant_id: str, key_id: str | None = None, owner: str | None = None
) -> list[CountryCount]:
    """The registered countries the account's (or one key's) actions came from, with their counts and latest use,
    most requests first: over the action log, i.e. its retention (30 days by default). One grouped SELECT."""
    requests = func.count().label("requests")
    query = (
        select(KeyAction.country, requests, func.max(KeyAction.at))
        .where(KeyAction.tenant_id == tenant_id, KeyAction.country.is_not(None))
        .group_by(KeyAction.country)
        .order_by(requests.desc(), KeyAction.country)
    )
    if key_id is not None:
        query = query.where(of_credential(key_id))
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    return [
        CountryCount(country=country, requests=count, last_used_at=last)
        for country, count, last in (await session.execute(query)).all()
    ]


async def hourly_counts(
    session: AsyncSession, *, tenant_id: str, hours: int, key_id: str | None = None, owner: str | None = None
) -> list[HourlyCount]:
    """Requests per UTC hour for the last ``hours`` hours (oldest first, empty hours included)."""
    now = utcnow()
    current = now.replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=hours - 1)
    query = select(KeyAction.at).where(KeyAction.tenant_id == tenant_id, KeyAction.at >= start)
    if key_id is not None:
        query = query.where(of_credential(key_id))
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    buckets = {start + timedelta(hours=i): 0 for i in range(hours)}
    # Bucketing in Python keeps the query portable across SQLite and PostgreSQL; the window is bounded (≤ 7 days).
    for (at,) in (await session.execute(query)).all():
        hour = at.replace(minute=0, second=0, microsecond=0)
        if hour in buckets:
            buckets[hour] += 1
    return [HourlyCount(hour=h, requests=n) for h, n in buckets.items()]
