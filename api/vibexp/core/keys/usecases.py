"""Key management as every adapter calls it (REST ``/api-keys``, the dashboard, the CLI, the operator): the scope
each operation needs, checked here, once (``vibexp.core.access.requires``).

``keys:read`` lists, reads and shows usage; ``keys:write`` creates, rotates, revokes and deletes. A key mints and
rotates only keys no wider than itself (``service._permissions``); a person, the CLI and the operator act for the
whole account (``Caller.acts_for_account``) and are bounded only by the tenant's policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, Scope, requires
from vibexp.core.clock import utcnow
from vibexp.core.errors import NotFound
from vibexp.core.keys import service
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.service import KeyIssuer, KeyPermissions, NewKey

__all__ = [
    "KeyPermissions",
    "NewKey",
    "account_of_key",
    "by_external_ref",
    "create",
    "delete",
    "get",
    "list_keys",
    "rename",
    "resume",
    "revoke",
    "revoke_or_delete",
    "rotate",
    "rotation_expiry",
    "set_permissions",
    "suspend",
]


def _issuer(caller: Caller) -> KeyIssuer | None:
    return None if caller.acts_for_account else caller


@requires(Scope.keys_read)
async def list_keys(
    session: AsyncSession, *, caller: Caller, status: KeyStatus | None = None, include_deleted: bool = False
) -> list[ApiKey]:
    return await service.list_keys(session, tenant_id=caller.tenant_id, status=status, include_deleted=include_deleted)


@requires(Scope.keys_read)
async def get(session: AsyncSession, *, caller: Caller, key_id: str, include_deleted: bool = False) -> ApiKey:
    return await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id, include_deleted=include_deleted)


@requires(Scope.keys_write)
async def create(
    session: AsyncSession,
    *,
    caller: Caller,
    name: str,
    description: str,
    permissions: KeyPermissions,
    source: str = "api",
    external_ref: str | None = None,
    rotated_from_id: str | None = None,
) -> NewKey:
    """A new key (its plaintext only in the answer); ``external_ref`` makes minting idempotent for the operator."""
    return await service.create_key(
        session,
        actor=caller.actor,
        tenant_id=caller.tenant_id,
        name=name,
        description=description,
        permissions=permissions,
        issuer=_issuer(caller),
        source=source,
        external_ref=external_ref,
        rotated_from_id=rotated_from_id,
    )


async def _key_of(session: AsyncSession, caller: Caller, key_id: str) -> ApiKey:
    """The caller's account's key ``key_id``, deleted or not (what each change below acts on)."""
    return await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id, include_deleted=True)


@requires(Scope.keys_write)
async def revoke(session: AsyncSession, *, caller: Caller, key_id: str) -> ApiKey:
    """Revoke a key (idempotent: a revoked key, deleted or not, stays as it is)."""
    key = await _key_of(session, caller, key_id)
    return await service.revoke_key(session, key=key, actor=caller.actor)


@requires(Scope.keys_write)
async def suspend(session: AsyncSession, *, caller: Caller, key_id: str) -> ApiKey:
    """Stop a key for now (the operator, when its account's policy no longer allows it); a revoked key cannot be."""
    key = await _key_of(session, caller, key_id)
    return await service.suspend_key(session, key=key, actor=caller.actor)


@requires(Scope.keys_write)
async def resume(session: AsyncSession, *, caller: Caller, key_id: str) -> ApiKey:
    """Let a suspended key work again."""
    key = await _key_of(session, caller, key_id)
    return await service.resume_key(session, key=key, actor=caller.actor)


@requires(Scope.keys_write)
async def rename(
    session: AsyncSession, *, caller: Caller, key_id: str, name: str | None = None, description: str | None = None
) -> ApiKey:
    """Change a key's name or description (``None``: unchanged)."""
    key = await _key_of(session, caller, key_id)
    return await service.update_key(session, key=key, name=name, description=description)


@requires(Scope.keys_write)
async def update(
    session: AsyncSession,
    *,
    caller: Caller,
    key_id: str,
    name: str | None = None,
    description: str | None = None,
    confirm_destructive: bool | None = None,
) -> ApiKey:
    """Change a key's name, description or ``confirm_destructive`` (``None``: unchanged); a change of the latter is
    audited and reaches every verifier as a permission change does."""
    key = await _key_of(session, caller, key_id)
    if key.deleted_at is not None:
        raise NotFound("API key not found (it was deleted)")
    if confirm_destructive is not None:
        await service.set_key_permissions(
            session,
            key=key,
            scopes=key.scopes,
            allowed_cidrs=key.allowed_cidrs,
            actor=caller.actor,
            confirm_destructive=confirm_destructive,
        )
    return await service.update_key(session, key=key, name=name, description=description)


@requires(Scope.keys_write)
async def set_permissions(
    session: AsyncSession,
    *,
    caller: Caller,
    key_id: str,
    scopes: Sequence[str],
    allowed_cidrs: Sequence[str],
    confirm_destructive: bool | None = None,
) -> bool:
    """Change a key's scopes, networks and ``confirm_destructive`` (``None``: unchanged) in place (the operator
    following its spec); whether anything changed."""
    key = await _key_of(session, caller, key_id)
    return await service.set_key_permissions(
        session,
        key=key,
        scopes=scopes,
        allowed_cidrs=allowed_cidrs,
        actor=caller.actor,
        confirm_destructive=confirm_destructive,
    )


@requires(Scope.keys_write)
async def delete(session: AsyncSession, *, caller: Caller, key_id: str) -> ApiKey:
    """Delete a revoked key (off the list; its usage and audit history stay); a key not revoked is refused."""
    key = await _key_of(session, caller, key_id)
    return await service.delete_key(session, key=key, actor=caller.actor)


@requires(Scope.keys_write)
async def revoke_or_delete(session: AsyncSession, *, caller: Caller, key_id: str) -> ApiKey:
    """``DELETE /api-keys/{id}``: a key that is not revoked is revoked (and stays listed, as revoked); a revoked key
    is deleted (off the list; its usage and audit history stay); a deleted one is not found."""
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id)
    if key.status != KeyStatus.revoked.value:
        return await service.revoke_key(session, key=key, actor=caller.actor)
    return await service.delete_key(session, key=key, actor=caller.actor)


@requires(Scope.keys_write)
async def rotate(
    session: AsyncSession,
    *,
    caller: Caller,
    key_id: str,
    grace_period: timedelta,
    permissions: KeyPermissions,
    source: str | None = None,
    external_ref: str | None = None,
) -> NewKey:
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id)
    return await service.rotate_key(
        session,
        key=key,
        actor=caller.actor,
        grace_period=grace_period,
        permissions=permissions,
        issuer=_issuer(caller),
        source=source,
        external_ref=external_ref,
    )


async def by_external_ref(session: AsyncSession, *, external_ref: str) -> ApiKey | None:
    """The key an outside system minted under ``external_ref`` (the operator's idempotency reference), in any
    account: the operator then acts as that key's account's ``Caller``."""
    return await service.find_key_by_external_ref(session, external_ref=external_ref)


async def account_of_key(session: AsyncSession, *, key_id: str) -> str:
    """The account a key belongs to, for those who administer the whole installation (the CLI addresses a key by
    its id alone): they then act as that account's ``Caller``. ``NotFound`` for an unknown or deleted key."""
    key = await service.get_key(session, key_id=key_id)
    return key.tenant_id


def rotation_expiry(key: ApiKey, max_lifetime_days: int | None) -> datetime | None:
    """The expiry a rotation gives the new key unless told otherwise (``rotate``'s rule, for a form to show): the old
    key's, under the account's maximum key lifetime from now."""
    return service.within_lifetime(key.expires_at, max_lifetime_days, utcnow())
