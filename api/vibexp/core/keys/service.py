"""API key lifecycle: create (plaintext returned once), list, revoke, rotate with an optional grace period.

Each change records its audit event (``vibexp.core.audit``) in the same transaction; the caller says who acts.

A key's permissions (``scopes``, ``allowed_cidrs``, ``expires_at``) are settled by ``_permissions`` for both
create and rotate: omitted values come from the issuing key (a key minted by a key is never wider than it: scopes,
networks, expiry; wider is ``InsufficientScope``), then the tenant's ``max_key_lifetime_days`` gives a key without
an expiry one and refuses a later one (``InvalidInput``). ``issuer=None`` is a caller acting for the whole account
(a person in the dashboard, the CLI, the operator).

Every change of a key's state is one conditional ``UPDATE ... WHERE <the state it changes from>`` (``_transition``),
so of concurrent requests exactly one makes each change and records its one audit event, on any number of
processes and on both databases:

* revoke: ``WHERE status <> 'revoked'``; revoking a revoked key changes and records nothing;
* rotate: ``WHERE status = 'active' AND replaced_by_id IS NULL AND not expired`` — one rotation per key. The others
  get ``Conflict`` (``key_already_rotated``) or, for a key revoked meanwhile, ``InvalidInput``; a key in its grace
  period is already rotated (rotate its successor instead). The successor is minted only after the claim, so no
  successor comes from a key that was revoked first. A revocation ends that key only: a successor minted before it
  (the grace period's new key) keeps working, as if the revocation came after the rotation, which it did;
* delete: ``WHERE status = 'revoked' AND deleted_at IS NULL``. Delete is soft: ``deleted_at`` takes the key off
  every list (``list_keys``, ``get_key``), its row stays for the usage and audit history, and being revoked it
  authenticates as nothing (a retired key presented still raises ``retired_key_used``).

A successor's expiry is, unless the rotation sets one, the old key's, capped by the issuer's and the tenant's
maximum lifetime: rotation never widens a key. A rotation may shorten it, or lengthen it within those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core import access, cidrs
from vibexp.core.access import Actor, Scope
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.errors import Conflict, InsufficientScope, InvalidInput, NotFound
from vibexp.core.ids import is_id, new_id
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.tokens import display_prefix, generate_key, hash_key
from vibexp.core.notices import Notice, note
from vibexp.core.tenants.models import Tenant

__all__ = [
    "REVOCATION_ACTIONS",
    "SERVICE_KEYS",
    "KeyIssuer",
    "KeyPermissions",
    "NewKey",
    "create_key",
    "delete_key",
    "find_key_by_external_ref",
    "get_key",
    "key_ids_of",
    "list_keys",
    "owned_by",
    "resume_key",
    "revoke_key",
    "revoke_once",
    "rotate_key",
    "set_key_permissions",
    "suspend_key",
    "update_key",
]


#: The audit actions a revocation may be recorded as: by a person or tool, a leak report, expiry, a policy.
REVOCATION_ACTIONS = frozenset({"key.revoked", "key.leaked", "key.expired", "key.auto_revoked"})


def _target(key: ApiKey) -> Target:
    return Target("key", id=key.id, name=key.name)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: the record and the plaintext, which exists nowhere else."""

    record: ApiKey
    plaintext: str

    def __repr__(self) -> str:  # never let the plaintext reach a log through a repr
        return f"NewKey(id={self.record.id!r}, prefix={self.record.prefix!r})"


class KeyIssuer(Protocol):
    """The key that asks for a new one (an API key's ``Caller``): what the new key may not exceed."""

    @property
    def granted(self) -> frozenset[Scope]: ...

    @property
    def allowed_cidrs(self) -> tuple[str, ...]: ...

    @property
    def expires_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    """What a key may do, as requested: ``None`` for a value the request left out."""

    scopes: Sequence[str] | None = None
    allowed_cidrs: Sequence[str] | None = None
    expires_at: datetime | None = None
    #: Destructive MCP tools ask the person first (``ApiKey.confirm_destructive``); ``None``: no (rotation: as
    #: before).
    confirm_destructive: bool | None = None


#: Everything unset: a new key of a full-access caller is ``*`` from anywhere, expiring by the tenant's policy.
UNRESTRICTED = KeyPermissions()


@dataclass(frozen=True, slots=True)
class _Settled:
    scopes: list[str]
    allowed_cidrs: list[str]
    expires_at: datetime | None
    confirm_destructive: bool = False


async def _permissions(
    session: AsyncSession,
    *,
    tenant_id: str,
    wanted: KeyPermissions,
    issuer: KeyIssuer | None,
    default_expiry: datetime | None = None,
) -> _Settled:
    """The new key's scopes, networks and expiry: defaults from the issuer, checked against it and the policy.

    ``default_expiry`` (a rotated key's) is the expiry when ``wanted`` sets none, capped by the issuer's and the
    policy's rather than refused: it was not asked for."""
    now = utcnow()
    if wanted.expires_at is not None and wanted.expires_at <= now:
        raise InvalidInput("expires_at must be in the future")
    if wanted.scopes is not None:
        scope_list = list(access.normalise(wanted.scopes))
    elif issuer is not None:
        scope_list = [s.value for s in access.ALL_SCOPES if s in issuer.granted]
        if len(scope_list) == len(access.ALL_SCOPES):
            scope_list = [access.FULL_ACCESS]
    else:
        scope_list = [access.FULL_ACCESS]
    networks = list(cidrs.normalise(wanted.allowed_cidrs)) if wanted.allowed_cidrs is not None else None
    expires_at = wanted.expires_at
    defaulted = expires_at is None and default_expiry is not None
    if defaulted:
        expires_at = default_expiry
    if issuer is not None:
        missing = access.first_missing(issuer.granted, scope_list)
        if missing is not None:
            raise InsufficientScope(
                missing, f"A key can only mint keys no wider than itself: this key lacks the scope {missing!r}"
            )
        if networks is None:
            networks = list(issuer.allowed_cidrs)
        outside = cidrs.uncovered(issuer.allowed_cidrs, networks)
        if outside is not None:
            raise InsufficientScope(
                "keys:write",
                f"A key can only mint keys no wider than itself: {outside} is outside this key's allowed_cidrs",
            )
        if issuer.expires_at is not None:
            if expires_at is None or (defaulted and expires_at > issuer.expires_at):
                expires_at = issuer.expires_at
            elif expires_at > issuer.expires_at:
                raise InsufficientScope(
                    "keys:write",
                    "A key can only mint keys no wider than itself: expires_at is later than this key's "
                    f"({issuer.expires_at.isoformat()})",
                )
    tenant = await session.get(Tenant, tenant_id)
    if tenant is not None and tenant.max_key_lifetime_days is not None:
        latest = now + timedelta(days=tenant.max_key_lifetime_days)
        if expires_at is None or defaulted:
            expires_at = within_lifetime(expires_at, tenant.max_key_lifetime_days, now)
        elif expires_at > latest + timedelta(seconds=1):  # a second of slack: "in 90 days" computed a moment ago
            raise InvalidInput(
                f"expires_at is beyond this account's maximum key lifetime of {tenant.max_key_lifetime_days} days "
                f"(at the latest {latest.replace(microsecond=0).isoformat()})"
            )
    return _Settled(
        scopes=scope_list,
        allowed_cidrs=networks or [],
        expires_at=expires_at,
        confirm_destructive=bool(wanted.confirm_destructive),
    )


def within_lifetime(expires_at: datetime | None, max_lifetime_days: int | None, now: datetime) -> datetime | None:
    """An expiry the account chose by default (a new key's "never", a rotated key's old expiry) under its maximum
    key lifetime: at the latest ``now`` + the maximum."""
    if max_lifetime_days is None:
        return expires_at
    latest = now + timedelta(days=max_lifetime_days)
    return latest if expires_at is None or expires_at > latest else expires_at


async def create_key(
    session: AsyncSession,
    *,
    tenant_id: str,
    name: str,
    actor: Actor,
    description: str = "",
    source: str = "api",
    permissions: KeyPermissions = UNRESTRICTED,
    issuer: KeyIssuer | None = None,
    external_ref: str | None = None,
    rotated_from_id: str | None = None,
    owner_user_id: str | None = None,
) -> NewKey:
    """A new key; ``owner_user_id`` makes it a personal key (the caller has checked the owner's membership and role
    under the membership's row lock), ``None`` a service key."""
    settled = await _permissions(session, tenant_id=tenant_id, wanted=permissions, issuer=issuer)
    new = await _mint(
        session,
        tenant_id=tenant_id,
        name=name,
        description=description,
        source=source,
        settled=settled,
        external_ref=external_ref,
        rotated_from_id=rotated_from_id,
        owner_user_id=owner_user_id,
    )
    details = {
        "prefix": new.record.prefix,
        "owner_user_id": owner_user_id,
        "source": source,
        "expires_at": _iso(settled.expires_at),
        "scopes": settled.scopes,
        "allowed_cidrs": settled.allowed_cidrs,
        "confirm_destructive": settled.confirm_destructive,
    }
    await audit.record(
        session, tenant_id=tenant_id, action="key.created", actor=actor, target=_target(new.record), details=details
    )
    return new


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def _mint(
    session: AsyncSession,
    *,
    tenant_id: str,
    name: str,
    description: str,
    source: str,
    settled: _Settled,
    external_ref: str | None,
    rotated_from_id: str | None = None,
    key_id: str | None = None,
    owner_user_id: str | None = None,
) -> NewKey:
    plaintext = generate_key()
    record = ApiKey(
        id=key_id or new_id(),
        tenant_id=tenant_id,
        name=name,
        description=description,
        prefix=display_prefix(plaintext),
        key_hash=hash_key(plaintext),
        status=KeyStatus.active.value,
        source=source,
        expires_at=settled.expires_at,
        scopes=settled.scopes,
        allowed_cidrs=settled.allowed_cidrs,
        confirm_destructive=settled.confirm_destructive,
        external_ref=external_ref,
        rotated_from_id=rotated_from_id,
        owner_user_id=owner_user_id,
        request_count=0,
    )
    session.add(record)
    await session.flush()
    if owner_user_id is not None:
        await session.refresh(record, ["owner_user"])
    return NewKey(record=record, plaintext=plaintext)


async def get_key(
    session: AsyncSession, *, key_id: str, tenant_id: str | None = None, include_deleted: bool = False
) -> ApiKey:
    """A key by id; with ``tenant_id`` another tenant's key is reported as not found (never as forbidden), and so
    is a deleted key unless ``include_deleted`` (the dashboard's page of a key the audit trail links to)."""
    key = await session.get(ApiKey, key_id) if is_id(key_id) else None
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
        raise NotFound("API key not found")
    if key.deleted_at is not None and not include_deleted:
        raise NotFound("API key not found (it was deleted)")
    return key


async def find_key_by_external_ref(session: AsyncSession, *, external_ref: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.external_ref == external_ref))


#: ``list_keys(owner=SERVICE_KEYS)``: the keys that belong to no person.
SERVICE_KEYS = ""


def owned_by(owner: str) -> ColumnElement[bool]:
    """Keys of ``owner``: a user's id (their personal keys) or ``SERVICE_KEYS`` (the keys of no person)."""
    return ApiKey.owner_user_id == owner if owner != SERVICE_KEYS else ApiKey.owner_user_id.is_(None)


def key_ids_of(tenant_id: str, owner: str) -> Select[str]:
    """The ids of the tenant's keys of ``owner`` (``owned_by``), deleted ones included: what the alerts and the
    action log filter by (``... .key_id.in_(key_ids_of(...))``)."""
    return select(ApiKey.id).where(ApiKey.tenant_id == tenant_id, owned_by(owner))


async def list_keys(
    session: AsyncSession,
    *,
    tenant_id: str,
    status: KeyStatus | None = None,
    include_deleted: bool = False,
    owner: str | None = None,
) -> list[ApiKey]:
    """The tenant's keys, oldest first; deleted ones only with ``include_deleted`` (to name them in history);
    ``owner`` a user's id (their personal keys) or ``SERVICE_KEYS``; ``None`` every key."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
    if owner is not None:
        query = query.where(owned_by(owner))
    if not include_deleted:
        query = query.where(ApiKey.deleted_at.is_(None))
    if status is not None:
        query = query.where(ApiKey.status == status.value)
    return list(await session.scalars(query))


async def update_key(
    session: AsyncSession, *, key: ApiKey, name: str | None = None, description: str | None = None
) -> ApiKey:
    if name is not None:
        key.name = name
    if description is not None:
        key.description = description
    await session.flush()
    return key


async def set_key_permissions(
    session: AsyncSession,
    *,
    key: ApiKey,
    scopes: Sequence[str],
    allowed_cidrs: Sequence[str],
    actor: Actor,
    confirm_destructive: bool | None = None,
) -> bool:
    """Give an existing key these scopes and networks, in place (for a caller acting for the whole account, such
    as the operator following an ApiKey's spec). Verifiers drop the cached key as on a revocation, so a narrower
    key is refused at once. Returns whether anything changed (nothing is recorded when nothing did)."""
    if key.status == KeyStatus.revoked.value:
        raise InvalidInput("a revoked key's permissions cannot be changed")
    try:
        scope_list, networks = list(access.normalise(scopes)), list(cidrs.normalise(allowed_cidrs))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    confirm = key.confirm_destructive if confirm_destructive is None else confirm_destructive
    previous = {
        "scopes": list(key.scopes),
        "allowed_cidrs": list(key.allowed_cidrs),
        "confirm_destructive": key.confirm_destructive,
    }
    wanted = {"scopes": scope_list, "allowed_cidrs": networks, "confirm_destructive": confirm}
    if previous == wanted:
        return False
    key.scopes, key.allowed_cidrs, key.confirm_destructive = scope_list, networks, confirm
    key.updated_at = utcnow()
    note(session, Notice.KEY_CHANGED, key.id)
    details: dict[str, object] = {**wanted, "previous": previous}
    await audit.record(
        session,
        tenant_id=key.tenant_id,
        action="key.permissions_changed",
        actor=actor,
        target=_target(key),
        details=details,
    )
    await session.flush()
    return True


async def revoke_key(
    session: AsyncSession,
    *,
    key: ApiKey,
    actor: Actor,
    action: str = "key.revoked",
    details: dict[str, object] | None = None,
) -> ApiKey:
    """Revoke at once, recorded as ``action`` (one of ``REVOCATION_ACTIONS``). Idempotent: revoking a revoked key
    keeps its first revocation time and records nothing."""
    await revoke_once(session, key=key, actor=actor, action=action, details=details)
    return key


async def revoke_once(
    session: AsyncSession,
    *,
    key: ApiKey,
    actor: Actor,
    action: str = "key.revoked",
    details: dict[str, object] | None = None,
) -> bool:
    """:func:`revoke_key`, answering whether this call revoked the key (``False``: it already was, by anyone up
    to this moment, and nothing is recorded): of concurrent revocations exactly one records its event."""
    if action not in REVOCATION_ACTIONS:
        raise ValueError(f"not a revocation action: {action!r}")
    now = utcnow()
    values = {"status": KeyStatus.revoked.value, "revoked_at": now, "updated_at": now}
    if not await _transition(session, key, values, ApiKey.status != KeyStatus.revoked.value):
        return False
    note(session, Notice.KEY_CHANGED, key.id)
    await audit.record(
        session, tenant_id=key.tenant_id, action=action, actor=actor, target=_target(key), details=details
    )
    await session.flush()
    return True


async def _transition(
    session: AsyncSession, key: ApiKey, values: dict[str, object], *when: ColumnElement[bool]
) -> bool:
    """``UPDATE api_keys SET values WHERE id = key.id AND when``: whether it changed the row; ``key`` is reloaded
    either way (the loser of a race sees the winner's change). The row lock (PostgreSQL) or the write lock (SQLite)
    makes concurrent transitions take turns, each re-checking ``when`` on the row as the previous one left it."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key.id, *when)
        .values(**values)
        .returning(ApiKey.id)
        .execution_options(synchronize_session=False)
    )
    changed = (await session.execute(statement)).first() is not None
    await session.refresh(key)
    return changed


async def delete_key(session: AsyncSession, *, key: ApiKey, actor: Actor) -> ApiKey:
    """Take a revoked key off every list (``deleted_at``); its usage and audit history stay. A key that is not
    revoked is refused (``InvalidInput``: revoke it first); one already deleted is ``NotFound``."""
    if key.deleted_at is not None:
        raise NotFound("API key not found (it was deleted)")
    if key.status != KeyStatus.revoked.value:
        raise InvalidInput(f"key {key.id} is {key.status}: revoke it first, then delete it")
    deleted = await _transition(
        session, key, {"deleted_at": utcnow()}, ApiKey.status == KeyStatus.revoked.value, ApiKey.deleted_at.is_(None)
    )
    if not deleted:  # another request deleted it first
        raise NotFound("API key not found (it was deleted)")
    await audit.record(session, tenant_id=key.tenant_id, action="key.deleted", actor=actor, target=_target(key))
    await session.flush()
    return key


async def suspend_key(session: AsyncSession, *, key: ApiKey, actor: Actor) -> ApiKey:
    """Refuse the key until :func:`resume_key`; other processes learn of it as of a revocation (``updated_at``)."""
    if key.status == KeyStatus.revoked.value:
        raise InvalidInput("a revoked key cannot be suspended")
    if key.status != KeyStatus.suspended.value:
        key.status = KeyStatus.suspended.value
        key.updated_at = utcnow()
        note(session, Notice.KEY_CHANGED, key.id)
        await audit.record(session, tenant_id=key.tenant_id, action="key.suspended", actor=actor, target=_target(key))
    return key


async def resume_key(session: AsyncSession, *, key: ApiKey, actor: Actor) -> ApiKey:
    """Accept a suspended key again (a revoked key stays revoked)."""
    if key.status == KeyStatus.revoked.value:
        raise InvalidInput("a revoked key cannot be resumed")
    if key.status != KeyStatus.active.value:
        key.status = KeyStatus.active.value
        key.updated_at = utcnow()
        note(session, Notice.KEY_CHANGED, key.id)
        await audit.record(session, tenant_id=key.tenant_id, action="key.resumed", actor=actor, target=_target(key))
    return key


def _not_rotatable(key: ApiKey, now: datetime) -> Exception | None:
    """Why ``key`` cannot be rotated now, or ``None`` when it can."""
    if key.status == KeyStatus.revoked.value:
        return InvalidInput("a revoked key cannot be rotated; create a new key instead")
    if key.status == KeyStatus.suspended.value:
        return InvalidInput("a suspended key cannot be rotated while it is suspended")
    if key.replaced_by_id is not None:
        return Conflict(
            f"key {key.id} was already rotated (its successor is key {key.replaced_by_id}): rotate the new key instead",
            code="key_already_rotated",
        )
    if key.expires_at is not None and key.expires_at <= now:
        return InvalidInput("an expired key cannot be rotated; create a new key instead")
    return None


async def rotate_key(
    session: AsyncSession,
    *,
    key: ApiKey,
    actor: Actor,
    grace_period: timedelta = timedelta(0),
    source: str | None = None,
    external_ref: str | None = None,
    permissions: KeyPermissions = UNRESTRICTED,
    issuer: KeyIssuer | None = None,
) -> NewKey:
    """Replace ``key`` with a new key of the same name; the old one stops now or when the grace period ends.

    The new key keeps the old one's scopes, networks and expiry unless ``permissions`` sets others (the expiry
    capped by the tenant's maximum lifetime from now). Either way an ``issuer`` may not end up with a wider key.
    Exactly one rotation of a key succeeds (see the module's docstring); the others raise ``Conflict``
    (``key_already_rotated``) or ``InvalidInput`` (revoked, suspended or expired meanwhile).
    """
    problem = _not_rotatable(key, utcnow())
    if problem is not None:
        raise problem
    wanted = KeyPermissions(
        scopes=permissions.scopes if permissions.scopes is not None else list(key.scopes),
        allowed_cidrs=permissions.allowed_cidrs if permissions.allowed_cidrs is not None else list(key.allowed_cidrs),
        expires_at=permissions.expires_at,
        confirm_destructive=(
            permissions.confirm_destructive if permissions.confirm_destructive is not None else key.confirm_destructive
        ),
    )
    settled = await _permissions(
        session, tenant_id=key.tenant_id, wanted=wanted, issuer=issuer, default_expiry=key.expires_at
    )
    now = utcnow()
    successor_id = new_id()
    values: dict[str, object] = {"replaced_by_id": successor_id, "updated_at": now}
    if grace_period > timedelta(0):
        ends = now + grace_period
        values["expires_at"] = ends if key.expires_at is None else min(key.expires_at, ends)
    else:
        values.update(status=KeyStatus.revoked.value, revoked_at=now)
    claimed = await _transition(
        session,
        key,
        values,
        ApiKey.status == KeyStatus.active.value,
        ApiKey.replaced_by_id.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
    )
    if not claimed:  # another request rotated, revoked or suspended it since it was read
        raise _not_rotatable(key, now) or Conflict(
            f"key {key.id} changed while it was being rotated: try again", code="key_changed"
        )
    note(session, Notice.KEY_CHANGED, key.id)
    new = await _mint(
        session,
        tenant_id=key.tenant_id,
        name=key.name,
        description=key.description,
        source=source or key.source,
        settled=settled,
        external_ref=external_ref,
        rotated_from_id=key.id,
        key_id=successor_id,
        owner_user_id=key.owner_user_id,
    )
    details = {
        "new_key_id": new.record.id,
        "new_prefix": new.record.prefix,
        "grace_period_seconds": int(grace_period.total_seconds()),
        "new_expires_at": _iso(settled.expires_at),
    }
    await audit.record(
        session, tenant_id=key.tenant_id, action="key.rotated", actor=actor, target=_target(key), details=details
    )
    return new
