"""Revoke keys whose plaintext turned up where it should not (``POST /api/v1/leaked-keys``, ``vibexp scan --revoke``),
and the connected apps (OAuth grants) whose tokens did (``revoke_leaked_grants``: audited ``oauth.revoked`` with
``reason: leaked``).

Each key or grant revoked here also opens a ``key_leaked`` alert on it (``vibexp.core.alerts.service.raise_alert``),
in the same transaction: the tenant's webhook and dashboard learn of the leak as of any other alert. It lives with
the alerts, above the keys it revokes (``vibexp.core.keys.service.revoke_once``): the keys never import the alerts.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, CredentialKind
from vibexp.core.alerts.models import AlertKind
from vibexp.core.alerts.service import raise_alert
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.service import revoke_once
from vibexp.core.keys.tokens import hash_key
from vibexp.core.oauth import service as oauth
from vibexp.core.oauth.models import OAuthGrant

__all__ = ["revoke_leaked", "revoke_leaked_grants"]


async def revoke_leaked(
    session: AsyncSession, *, plaintexts: Iterable[str], actor: Actor, details: dict[str, object] | None = None
) -> list[ApiKey]:
    """Revoke every active key among ``plaintexts`` (unknown and already revoked ones are ignored), each recorded as
    ``key.leaked`` with ``details`` (where it was found) and raised as a ``key_leaked`` alert; flushes only.

    Of concurrent reports of one key exactly one revokes it, records the event and raises the alert (the revocation
    is a conditional update, ``service.revoke_once``); the others find it revoked and add nothing."""
    digests = {hash_key(text) for text in plaintexts}
    if not digests:
        return []
    found = await session.scalars(
        select(ApiKey).where(ApiKey.key_hash.in_(digests), ApiKey.status != KeyStatus.revoked.value)
    )
    revoked = []
    for key in list(found):
        if not await revoke_once(session, key=key, actor=actor, action="key.leaked", details=details):
            continue  # revoked meanwhile, by another report or anyone else: recorded there
        revoked.append(key)
        await raise_alert(
            session, tenant_id=key.tenant_id, key_id=key.id, kind=AlertKind.key_leaked, details=_seen(actor, details)
        )
    return revoked


def _seen(actor: Actor, details: dict[str, object] | None) -> dict[str, object]:
    """The alert's details: where it was found, without the blanks a report may leave (no url, say), and who
    reported it from where."""
    seen = {name: value for name, value in (details or {}).items() if value is not None}
    seen["reported_by"] = actor.name
    if actor.client_ip:
        seen["client_ip"] = actor.client_ip
    return seen


async def revoke_leaked_grants(
    session: AsyncSession, *, plaintexts: Iterable[str], actor: Actor, details: dict[str, object] | None = None
) -> list[OAuthGrant]:
    """Revoke the connected app of every leaked OAuth token (or still-usable code) among ``plaintexts``, each raised
    as a ``key_leaked`` alert on the grant; flushes only. Keys and unknown tokens are ignored."""
    revoked = await oauth.revoke_leaked(session, plaintexts=plaintexts, actor=actor, details=details)
    for grant in revoked:
        await raise_alert(
            session,
            tenant_id=grant.tenant_id,
            key_id=grant.id,
            kind=AlertKind.key_leaked,
            details=_seen(actor, details),
            credential=CredentialKind.grant,
        )
    return revoked
