"""Revoke keys whose plaintext turned up where it should not (``vibexp scan --revoke``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.audit.service import Actor
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.service import revoke_key
from vibexp.core.keys.tokens import hash_key

__all__ = ["revoke_leaked"]


async def revoke_leaked(
    session: AsyncSession, *, plaintexts: Iterable[str], actor: Actor, details: dict[str, object] | None = None
) -> list[ApiKey]:
    """Revoke every active key among ``plaintexts`` (unknown and already revoked ones are ignored), each recorded as
    ``key.leaked`` with ``details`` (where it was found); flushes only."""
    digests = {hash_key(text) for text in plaintexts}
    if not digests:
        return []
    found = await session.scalars(
        select(ApiKey).where(ApiKey.key_hash.in_(digests), ApiKey.status != KeyStatus.revoked.value)
    )
    return [await revoke_key(session, key=key, actor=actor, action="key.leaked", details=details) for key in found]
