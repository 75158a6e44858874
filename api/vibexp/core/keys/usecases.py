"""Key management as a key calls it (REST ``/api-keys``): the scope each operation needs, checked here, once.

``keys:read`` lists, reads and shows usage; ``keys:write`` creates, rotates and revokes. A key mints and rotates
only keys no wider than itself (``service._permissions``). The CLI, the operator and the dashboard act for the
whole account and call ``vibexp.core.keys.service`` directly.
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

__all__ = ["KEYS_READ", "KEYS_WRITE", "create", "get", "list_keys", "revoke", "rotate"]

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
