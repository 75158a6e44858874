"""Key management as every adapter calls it (REST ``/api-keys``, the dashboard, the CLI, the operator): the scope
each operation needs, checked here, once (``vibexp.core.access.requires``).

``keys:read`` lists, reads and shows usage; ``keys:write`` creates, rotates, revokes and deletes. A key mints and
rotates only keys no wider than itself (``service._permissions``); a person, the CLI and the operator act for the
whole account (``Caller.acts_for_account``) and are bounded only by the tenant's policy.

Teams: a key's owner is a person (a personal key) or nobody (a service key). Members and viewers (signed in, or
through their personal key: ``Caller.sees_only_own_keys``) see and change only their own keys; another's key is
``NotFound``, exactly as another account's. A person's new key is theirs; only admins and owners make service keys
(``service=True``); a service key, the CLI and the operator make service keys, or (the CLI's ``--owner``) a
member's. A personal key is never wider than its owner's role (``access.key_ceiling``), checked under the owner's
membership row lock, so a removal racing the mint either refuses it or revokes the new key with the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core import access
from vibexp.core.access import Caller, Role, Scope, requires
from vibexp.core.clock import utcnow
from vibexp.core.errors import InsufficientScope, InvalidInput, NotFound
from vibexp.core.keys import service
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.service import KeyIssuer, KeyPermissions, NewKey
from vibexp.core.users import service as users

__all__ = [
    "OWNER_ME",
    "OWNER_SERVICE",
    "KeyPermissions",
    "NewKey",
    "account_of_key",
    "by_external_ref",
    "create",
    "delete",
    "get",
    "list_keys",
    "owner_filter",
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


#: ``owner=`` values besides an e-mail or a user id: the caller's own keys, and the keys of nobody.
OWNER_ME = "me"
OWNER_SERVICE = "service"


async def owner_filter(session: AsyncSession, *, caller: Caller, owner: str | None) -> str | None:
    """What an ``owner=`` filter (``me``, ``service``, an e-mail or a user id) means as ``service.list_keys``'s
    ``owner``; a member's or viewer's answer is always their own keys (``?owner=`` can only narrow it). An empty
    ``owner`` (a form's blank choice) is no filter."""
    if not owner:
        chosen = None
    elif owner == OWNER_SERVICE:
        chosen = service.SERVICE_KEYS
    elif owner == OWNER_ME:
        if caller.person is None:
            raise InvalidInput("owner=me: this credential belongs to no person (a service key or the CLI)")
        chosen = caller.person
    elif "@" in owner:
        user = await users.find_user(session, email=owner)
        chosen = user.id if user is not None else owner  # an unknown e-mail matches no key
    else:
        chosen = owner
    if caller.sees_only_own_keys:
        return caller.person if chosen in (None, caller.person) else _NOBODY
    return chosen


_NOBODY = "-"  # an owner id no key has


@requires(Scope.keys_read)
async def list_keys(
    session: AsyncSession,
    *,
    caller: Caller,
    status: KeyStatus | None = None,
    include_deleted: bool = False,
    owner: str | None = None,
) -> list[ApiKey]:
    """The account's keys (a member's or viewer's own), ``owner`` as ``owner_filter`` reads it."""
    return await service.list_keys(
        session,
        tenant_id=caller.tenant_id,
        status=status,
        include_deleted=include_deleted,
        owner=await owner_filter(session, caller=caller, owner=owner),
    )


def _visible(caller: Caller, key: ApiKey) -> ApiKey:
    """A member or viewer sees their own keys only: another's is not found (never revealed)."""
    if caller.sees_only_own_keys and key.owner_user_id != caller.person:
        raise NotFound("API key not found")
    return key


@requires(Scope.keys_read)
async def get(session: AsyncSession, *, caller: Caller, key_id: str, include_deleted: bool = False) -> ApiKey:
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id, include_deleted=include_deleted)
    return _visible(caller, key)


async def _owner_of_new_key(
    session: AsyncSession, caller: Caller, *, service_key: bool, owner_email: str | None
) -> str | None:
    """Who a new key belongs to: the acting person's own unless an admin or owner asks for a service key; for a
    service key, the CLI and the operator a service key unless ``owner_email`` names a member."""
    if caller.person is not None:
        if owner_email is not None:
            raise InvalidInput("a person's new key is their own: owner applies to service keys and the CLI")
        if service_key:
            if caller.role is None or not Role(caller.role).manages_everyone:
                raise InsufficientScope(Scope.keys_write, "Only admins and owners make service keys")
            return None
        return caller.person
    if owner_email is None:
        return None
    user = await users.find_user(session, email=owner_email)
    if user is None:
        raise NotFound(f"{owner_email} is not a member of this account")
    return user.id


async def _bounded_by_owner(
    session: AsyncSession,
    caller: Caller,
    owner_user_id: str | None,
    permissions: KeyPermissions,
    *,
    rotation: bool = False,
) -> KeyPermissions:
    """Lock the owner's membership (a removal waits for this mint, or went first and refuses it) and keep the new
    key within their role: omitted scopes are the role's (a rotation's, the old key's), wider ones
    ``InsufficientScope``."""
    if owner_user_id is None:
        return permissions
    membership = await users.lock_member(session, tenant_id=caller.tenant_id, user_id=owner_user_id)
    if membership is None:
        raise NotFound("the key's owner is not a member of this account")
    bound = access.key_ceiling(membership.role)
    wanted = permissions.scopes
    if wanted is None:
        if rotation:
            return permissions
        if caller.acts_for_account:
            names = [scope.value for scope in access.ALL_SCOPES if scope in bound]
            scopes = [access.FULL_ACCESS] if len(names) == len(access.ALL_SCOPES) else names
            return KeyPermissions(scopes, permissions.allowed_cidrs, permissions.expires_at)
        wanted = [scope.value for scope in access.ALL_SCOPES if scope in caller.granted]  # the key's own
    missing = access.first_missing(bound, access.normalise(wanted))
    if missing is not None:
        raise InsufficientScope(missing, f"A {membership.role}'s key cannot hold the scope {missing!r}")
    return permissions
    membership = await users.lock_member(session, tenant_id=caller.tenant_id, user_id=owner_user_id)
    if membership is None:
        raise NotFound("the key's owner is not a member of this account")
    bound = access.key_ceiling(membership.role)
    if permissions.scopes is None and caller.acts_for_account:
        names = [scope.value for scope in access.ALL_SCOPES if scope in bound]
        scopes = [access.FULL_ACCESS] if len(names) == len(access.ALL_SCOPES) else names
        return KeyPermissions(scopes, permissions.allowed_cidrs, permissions.expires_at)
    wanted = permissions.scopes
    if wanted is None:  # a key's own scopes (already within its owner's role), as the service defaults them
        wanted = [scope.value for scope in access.ALL_SCOPES if scope in caller.granted]
    missing = access.first_missing(bound, access.normalise(wanted))
    if missing is not None:
        raise InsufficientScope(missing, f"A {membership.role}'s key cannot hold the scope {missing!r}")
    return permissions


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
    service_key: bool = False,
    owner_email: str | None = None,
) -> NewKey:
    """A new key (its plaintext only in the answer); ``external_ref`` makes minting idempotent for the operator.
    Its owner: see ``_owner_of_new_key``."""
    owner_user_id = await _owner_of_new_key(session, caller, service_key=service_key, owner_email=owner_email)
    permissions = await _bounded_by_owner(session, caller, owner_user_id, permissions)
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
        owner_user_id=owner_user_id,
    )


async def _key_of(session: AsyncSession, caller: Caller, key_id: str) -> ApiKey:
    """The caller's account's key ``key_id``, deleted or not (what each change below acts on); a member's or
    viewer's own only."""
    key = await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id, include_deleted=True)
    return _visible(caller, key)


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
    key = _visible(caller, await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id))
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
    key = _visible(caller, await service.get_key(session, key_id=key_id, tenant_id=caller.tenant_id))
    if key.owner_user_id is not None:  # the successor is the same person's: never once they are removed
        permissions = await _bounded_by_owner(session, caller, key.owner_user_id, permissions, rotation=True)
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
