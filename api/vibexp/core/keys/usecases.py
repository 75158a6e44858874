"""Key management as a key calls it (REST ``/api-keys``): the scope each operation needs, checked here, once.

``keys:read`` lists, reads and shows usage; ``keys:write`` creates, rotates, revokes and deletes. A key mints and
rotates only keys no wider than itself (``service._permissions``). The CLI, the operator and the dashboard act for
the whole account and call ``vibexp.core.keys.service`` directly.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.audit.service import Actor
from vibexp.core.keys import service
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.scopes import require
from vibexp.core.keys.service import KeyPermissions, NewKey
from vibexp.core.keys.verifier import Principal

__all__ = ["KEYS_READ", "KEYS_WRITE", "create", "get", "list_keys", "revoke", "revoke_or_delete", "rotate"]

KEYS_READ = "keys:read"
KEYS_WRITE = "keys:write"


async def list_keys(session: AsyncSession, *, caller: Principal, status: KeyStatus | None = None) -> list[ApiKey]:
    require(caller, KEYS_READ)
    return await service.list_keys(session, tenant_id=caller.tenant_id, status=status)


async def get(session: AsyncSession, *, caller: Principal, key_id: str) -> ApiKey:
    require(caller, KEYS_READ)
    return await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id)


async def create(
    session: AsyncSession,
    *,
    caller: Principal,
    actor: Actor,
    name: str,
    description: str,
    permissions: KeyPermissions,
) -> NewKey:
    require(caller, KEYS_WRITE)
    return await service.create_key(
        session,
        actor=actor,
        tenant_id=caller.tenant_id,
        name=name,
        description=description,
        permissions=permissions,
        issuer=caller,
        source="api",
    )


async def revoke(session: AsyncSession, *, caller: Principal, actor: Actor, key_id: str) -> ApiKey:
    require(caller, KEYS_WRITE)
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id)
    return await service.revoke_key(session, key=key, actor=actor)


async def revoke_or_delete(session: AsyncSession, *, caller: Principal, actor: Actor, key_id: str) -> ApiKey:
    """``DELETE /api-keys/{id}``: a key that is not revoked is revoked (and stays listed, as revoked); a revoked key
    is deleted (off the list; its usage and audit history stay); a deleted one is not found."""
    require(caller, KEYS_WRITE)
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id)
    if key.status != KeyStatus.revoked.value:
        return await service.revoke_key(session, key=key, actor=actor)
    return await service.delete_key(session, key=key, actor=actor)


async def rotate(
    session: AsyncSession,
    *,
    caller: Principal,
    actor: Actor,
    key_id: str,
    grace_period: timedelta,
    permissions: KeyPermissions,
) -> NewKey:
    require(caller, KEYS_WRITE)
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id)
    return await service.rotate_key(
        session, key=key, actor=actor, grace_period=grace_period, permissions=permissions, issuer=caller
    )
