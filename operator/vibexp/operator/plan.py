"""What one ApiKey reconcile should do, decided without any I/O.

:func:`plan` looks at the parsed spec, the newest key minted for the ApiKey, its tenant (the custom resource and
the database record) and its Secret, and returns one decision; :mod:`vibexp.operator.apikeys.execute` applies it.
Every rule of the operator lives here, so a table of cases tests them all in milliseconds.

Policy on existing keys (documented in the README): while the tenant is missing, suspended or does not allow the
ApiKey's namespace, the existing key is *suspended* (refused by the API, its Secret kept) and it is resumed as soon
as the policy allows it again. A transient state (the tenant is not in the database yet) leaves the key as it is.

Permissions follow the spec: a change of spec.scopes or spec.allowedCidrs is applied to the existing key in place
(``Refresh.permissions``), and every key minted for the ApiKey (first, rotated, moved) gets the spec's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from vibexp.operator.models import ApiKeySpec, TenantSpec
from vibexp.operator.status import ReadyState, iso

__all__ = [
    "Blocked",
    "Change",
    "CurrentKey",
    "Decision",
    "KeyState",
    "Mint",
    "Phase",
    "Refresh",
    "Replace",
    "Revoke",
    "SecretView",
    "TenantView",
    "plan",
]


class Phase(StrEnum):
    pending = "Pending"
    active = "Active"
    suspended = "Suspended"
    revoked = "Revoked"
    expired = "Expired"


class KeyState(StrEnum):
    active = "active"
    suspended = "suspended"
    revoked = "revoked"


@dataclass(frozen=True, slots=True)
class CurrentKey:
    """The newest key minted for the ApiKey (slot n of ``k8s:<uid>:<n>``)."""

    id: str
    prefix: str
    slot: int
    tenant_id: str
    state: KeyState
    created_at: datetime
    expires_at: datetime | None
    name: str
    description: str
    scopes: tuple[str, ...] = ("*",)
    allowed_cidrs: tuple[str, ...] = ()
    confirm_destructive: bool = False


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    name: str
    suspended: bool


@dataclass(frozen=True, slots=True)
class TenantView:
    """The tenant as Kubernetes (``spec``: None when absent or being deleted) and the database see it."""

    spec: TenantSpec | None
    record: TenantRecord | None


@dataclass(frozen=True, slots=True)
class SecretView:
    """The Secret as found: whose it is, whether it delivers the current key, and its bookkeeping."""

    owned: bool
    holds_key: bool
    #: The rotation request the key in it satisfies; None when the annotation is missing (never a reason to rotate).
    trigger: str | None
    metadata_current: bool


class Change(StrEnum):
    """Why a key is replaced by a new one."""

    tenant_changed = "TenantChanged"
    secret_missing = "SecretDrift"  # noqa: S105 - an event reason, not a password
    secret_mismatch = "SecretMismatch"  # noqa: S105 - an event reason, not a password
    rotation_requested = "Rotated"
    rotation_scheduled = "ScheduledRotation"

    @property
    def expected(self) -> bool:
        """Asked for (a Normal event) rather than repair of drift (a Warning)."""
        return self in (Change.tenant_changed, Change.rotation_requested, Change.rotation_scheduled)

    @property
    def event_reason(self) -> str:
        # Secret drift of both kinds, and rotations of both kinds, share one event reason users filter on.
        return {Change.secret_mismatch: "SecretDrift", Change.rotation_scheduled: "Rotated"}.get(self, self.value)


@dataclass(frozen=True, slots=True)
class Mint:
    """No key yet: mint the first one (slot 0: any older slot would have been found as the current key)."""

    tenant_id: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Replace:
    """Mint the next key and retire the current one (at once, or after ``grace``)."""

    slot: int
    change: Change
    message: str
    grace: timedelta
    #: Set when the key moves to another tenant: the old key is revoked, the new one minted for this tenant.
    new_tenant_id: str | None
    #: The current key is suspended: accept it again before rotating it.
    resume: bool


@dataclass(frozen=True, slots=True)
class Refresh:
    """The key is fine: bring its record and Secret metadata in line, resume it if it was suspended.

    ``permissions``: spec.scopes, spec.allowedCidrs or spec.confirmDestructive differ from the key's; they are
    changed on the same key (the Secret keeps working, with the new permissions), as a GitHub or Unkey key's
    settings are edited.
    """

    rename: bool
    repair_metadata: bool
    resume: bool
    permissions: bool = False


@dataclass(frozen=True, slots=True)
class Revoke:
    """spec.revoked: revoke every key of this ApiKey and delete its Secret."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """Nothing can be minted or kept as it is; ``suspend`` disables the current key while the policy forbids it."""

    state: ReadyState
    phase: Phase
    suspend: bool = False


Decision = Mint | Replace | Refresh | Revoke | Blocked


def _tenant_problem(spec: ApiKeySpec, tenant: TenantView) -> tuple[ReadyState, bool] | None:
    """Why the tenant cannot hold this ApiKey's key now, and whether that is policy (True) or transient."""
    cr = tenant.spec
    if cr is None or cr.deleting:
        return ReadyState(False, "TenantNotFound", f"no VibeXPTenant named {spec.tenant!r}"), True
    if not cr.allows(spec.namespace):
        message = (
            f"VibeXPTenant {spec.tenant} does not allow keys in namespace {spec.namespace} (spec.allowedNamespaces)"
        )
        return ReadyState(False, "NamespaceNotAllowed", message), True
    if cr.suspended:
        return ReadyState(False, "TenantSuspended", f"VibeXPTenant {spec.tenant} is suspended"), True
    if tenant.record is None:
        return ReadyState(False, "TenantNotReady", f"tenant {spec.tenant} is not in the database yet"), False
    if tenant.record.suspended:
        return ReadyState(False, "TenantSuspended", f"tenant {spec.tenant} is suspended"), True
    return None


def _working_phase(current: CurrentKey | None) -> Phase:
    if current is None:
        return Phase.pending
    return Phase.suspended if current.state is KeyState.suspended else Phase.active


def _replacement(
    spec: ApiKeySpec, current: CurrentKey, tenant: TenantRecord, secret: SecretView | None, now: datetime
) -> Replace | None:
    def replace(change: Change, message: str, grace: timedelta = timedelta(0)) -> Replace:
        moving = current.tenant_id != tenant.id
        return Replace(
            slot=current.slot + 1,
            change=change,
            message=message,
            grace=grace,
            new_tenant_id=tenant.id if moving else None,
            resume=current.state is KeyState.suspended and not moving,
        )

    old = f"{current.prefix}..."
    if current.tenant_id != tenant.id:
        return replace(Change.tenant_changed, f"moved to tenant {tenant.name}: new key minted, old key revoked")
    if secret is None:
        return replace(
            Change.secret_missing,
            f"Secret {spec.secret_name} was deleted; the key cannot be recovered (only its hash is stored), "
            f"so it was rotated and {old} revoked",
        )
    if not secret.holds_key:
        return replace(
            Change.secret_mismatch,
            f"Secret {spec.secret_name} no longer holds key {old}; rotated to a new key and revoked {old}",
        )
    trigger = spec.rotation.trigger
    if trigger and secret.trigger is not None and secret.trigger != trigger:
        return replace(Change.rotation_requested, f"rotation requested (trigger {trigger!r})", spec.rotation.grace)
    if spec.rotation.due(created_at=current.created_at, now=now):
        return replace(
            Change.rotation_scheduled,
            f"scheduled rotation: the key is {spec.rotation.every_days} days old",
            spec.rotation.grace,
        )
    return None


def plan(
    spec: ApiKeySpec, current: CurrentKey | None, tenant: TenantView, secret: SecretView | None, now: datetime
) -> Decision:
    """The one decision for this ApiKey now (pure: same inputs, same answer)."""
    if spec.revoked:
        return Revoke()
    if current is not None and current.state is KeyState.revoked:
        state = ReadyState(False, "RevokedElsewhere", f"key {current.prefix}... was revoked outside Kubernetes")
        return Blocked(state, Phase.revoked)
    if current is not None and current.expires_at is not None and current.expires_at <= now:
        return Blocked(ReadyState(False, "Expired", f"key expired at {iso(current.expires_at)}"), Phase.expired)
    if current is None and spec.expires_at is not None and spec.expires_at <= now:
        return Blocked(ReadyState(False, "Expired", "spec.expiresAt is in the past"), Phase.expired)

    problem = _tenant_problem(spec, tenant)
    if problem is not None:
        state, forbidden = problem
        if current is not None and forbidden:
            message = f"{state.message}; key {current.prefix}... is suspended until the policy allows it again"
            return Blocked(ReadyState(False, state.reason, message), Phase.suspended, suspend=True)
        return Blocked(state, _working_phase(current))
    record = tenant.record
    assert record is not None  # no problem means the tenant is in the database

    if secret is not None and not secret.owned:
        message = f"Secret {spec.secret_name} exists and is not owned by this ApiKey; it is left untouched"
        return Blocked(ReadyState(False, "SecretConflict", message), _working_phase(current))
    if current is None:
        return Mint(tenant_id=record.id, expires_at=spec.expires_at)
    replacement = _replacement(spec, current, record, secret, now)
    if replacement is not None:
        return replacement
    assert secret is not None  # _replacement handles a missing Secret
    return Refresh(
        rename=(current.name, current.description) != (spec.display_name, spec.description),
        repair_metadata=not secret.metadata_current,
        resume=current.state is KeyState.suspended,
        permissions=(current.scopes, current.allowed_cidrs, current.confirm_destructive)
        != (spec.scopes, spec.allowed_cidrs, spec.confirm_destructive),
    )
