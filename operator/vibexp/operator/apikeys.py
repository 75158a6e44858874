"""ApiKey reconciliation: observe, :func:`~vibexp.operator.plan.plan`, apply, report.

One level-based function, :func:`reconcile_apikey`, is called by every trigger (create/update/resume, the sync
timer, Secret events), always under the object's lock, and drives the object to its desired state from three
sources of truth:

* the database: the ApiKey's n-th key has ``external_ref = "k8s:<uid>:<n>"`` (unique), so the newest key is found
  by looking refs up, whatever the status says — a crash between any two steps never mints twice;
* the Secret: the plaintext exists only there; it is written *inside* the database transaction that mints the
  key (commit after the Secret is written), so a committed key always reached its Secret;
* the spec: tenant, names, revocation, rotation requests and schedule.

The decision is pure (``plan``); this module only gathers its inputs and applies it. The plaintext key is never
logged: it travels from ``create_key`` straight into the Secret body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client import V1Secret
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, ActorType, Caller
from vibexp.core.clock import utcnow
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.tenants import usecases as accounts
from vibexp.operator.events import post_event
from vibexp.operator.kube import KubeApiError
from vibexp.operator.models import ApiKeySpec, SpecError, TenantSpec
from vibexp.operator.plan import (
    Blocked,
    CurrentKey,
    Decision,
    KeyState,
    Mint,
    Phase,
    Refresh,
    Replace,
    Revoke,
    SecretView,
    TenantRecord,
    TenantView,
    plan,
)
from vibexp.operator.resources import external_ref
from vibexp.operator.runtime import OperatorRuntime
from vibexp.operator.secrets import (
    SecretMetadata,
    build_secret,
    holds_key,
    is_owned_by,
    metadata_current,
    secret_trigger,
)
from vibexp.operator.status import ReadyState, iso, ready_condition, ready_of, status_patch

__all__ = ["delete_apikey", "latest_key", "reconcile_apikey", "report_apikey_outage", "sync_apikey"]

log = logging.getLogger(__name__)

KEY_READY = "KeyReady"
INVALID_SPEC = "InvalidSpec"
INVALID_SECRET = "InvalidSecret"  # noqa: S105 - a condition reason
#: VibeXP refused the key the spec asks for (say, spec.expiresAt beyond the tenant's keyPolicy.maxLifetimeDays).
#: Not a "needs a spec change" reason: a change of the tenant's policy can clear it too, so the sync retries it.
KEY_REFUSED = "KeyRefused"
#: Ready reasons only a spec change can clear: the sync does not retry them at the same generation.
NEEDS_SPEC_CHANGE = frozenset({INVALID_SPEC, INVALID_SECRET})


async def latest_key(session: AsyncSession, uid: str, start: int = 0) -> tuple[int, ApiKey | None]:
    """The newest key minted for this ApiKey and its rotation number; (0, None) when none exists."""
    n = max(0, start)
    current = await keys.by_external_ref(session, external_ref=external_ref(uid, n))
    while current is None and n > 0:  # the status ran ahead of the database (never expected, but be safe)
        n -= 1
        current = await keys.by_external_ref(session, external_ref=external_ref(uid, n))
    if current is None:
        return n, None
    while True:
        newer = await keys.by_external_ref(session, external_ref=external_ref(uid, n + 1))
        if newer is None:
            return n, current
        n, current = n + 1, newer


async def _unrevoked(session: AsyncSession, uid: str, upto: int) -> list[ApiKey]:
    """Every key this ApiKey minted that is not revoked yet (the current one and any in a grace period)."""
    found = []
    for n in range(upto + 1):
        key = await keys.by_external_ref(session, external_ref=external_ref(uid, n))
        if key is not None and key.status != KeyStatus.revoked.value:
            found.append(key)
    return found


async def _revoke_all(session: AsyncSession, uid: str, upto: int, *, actor: Actor) -> list[ApiKey]:
    return [
        await keys.revoke(session, caller=Caller.operator(key.tenant_id, actor=actor), key_id=key.id)
        for key in await _unrevoked(session, uid, upto)
    ]


def operator_actor(spec: ApiKeySpec) -> Actor:
    """The audit trail's actor for what the operator does to an ApiKey's keys: the object it reconciled."""
    where = f"{spec.namespace}/{spec.name}"
    return Actor(ActorType.operator, id=where, name=f"operator (ApiKey {where})")


def _event(body: Mapping[str, Any], ok: bool | None, reason: str, message: str) -> None:
    """A Kubernetes event on the ApiKey, and the same line in the operator's log (prefixes only, never a key)."""
    meta = body["metadata"]
    level = logging.INFO if ok else logging.WARNING
    log.log(level, "ApiKey %s/%s: %s: %s", meta.get("namespace"), meta.get("name"), reason, message)
    post_event(body, warning=not ok, reason=reason, message=message)


def _current(record: ApiKey | None, slot: int) -> CurrentKey | None:
    if record is None:
        return None
    return CurrentKey(
        id=record.id,
        prefix=record.prefix,
        slot=slot,
        tenant_id=record.tenant_id,
        state=KeyState(record.status),
        created_at=record.created_at,
        expires_at=record.expires_at,
        name=record.name,
        description=record.description,
        scopes=tuple(record.scopes),
        allowed_cidrs=tuple(record.allowed_cidrs),
    )


def _secret_view(spec: ApiKeySpec, secret: V1Secret | None, record: ApiKey | None, slot: int) -> SecretView | None:
    if secret is None:
        return None
    trigger = secret_trigger(secret)
    current = record is not None and holds_key(secret, record.key_hash)
    want = _metadata(spec, record, slot) if record is not None else None
    return SecretView(
        owned=is_owned_by(secret, spec.uid),
        holds_key=current,
        trigger=trigger,
        metadata_current=want is not None and metadata_current(secret, want, trigger=trigger),
    )


def _metadata(spec: ApiKeySpec, record: ApiKey, slot: int) -> SecretMetadata:
    return SecretMetadata(spec, key_id=record.id, prefix=record.prefix, rotation=slot)


@dataclass
class Outcome:
    """What one reconcile did: the Ready state, the phase, the key shown in status, the events already posted."""

    state: ReadyState
    phase: Phase
    key: ApiKey | None = None
    rotation: int = 0
    tenant_id: str | None = None
    events: list[str] = field(default_factory=list)


def _ready(spec: ApiKeySpec) -> ReadyState:
    return ReadyState(True, KEY_READY, f"key delivered in Secret {spec.secret_name}")


def current_slot(decision: Replace) -> int:
    return decision.slot - 1


class _Executor:
    """Applies one decision inside the reconcile's database transaction."""

    def __init__(self, rt: OperatorRuntime, body: Mapping[str, Any], spec: ApiKeySpec, session: AsyncSession) -> None:
        self.rt, self.body, self.spec, self.session = rt, body, spec, session
        self.actor = operator_actor(spec)

    def _as(self, tenant_id: str) -> Caller:
        """The operator as the ``Caller`` of the account a key belongs to (an ApiKey's keys may move between
        accounts when its spec names another tenant)."""
        return Caller.operator(tenant_id, actor=self.actor)

    async def apply(self, decision: Decision, slot: int, current: ApiKey | None, secret: V1Secret | None) -> Outcome:
        match decision:
            case Revoke():
                return await self._revoke(slot, current)
            case Blocked():
                return await self._blocked(decision, slot, current)
            case Mint():
                return await self._mint(decision, secret)
            case Replace():
                assert current is not None
                return await self._replace(decision, current, secret)
            case Refresh():
                assert current is not None and secret is not None
                return await self._refresh(decision, slot, current)
        raise AssertionError(decision)  # pragma: no cover - the match is exhaustive

    async def _revoke(self, slot: int, current: ApiKey | None) -> Outcome:
        upto = slot if current is not None else slot - 1
        revoked = await _revoke_all(self.session, self.spec.uid, upto, actor=self.actor)
        outcome = Outcome(ReadyState(False, "Revoked", "revoked by spec.revoked"), Phase.revoked, current, slot)
        if revoked:
            prefixes = ", ".join(f"{k.prefix}..." for k in revoked)
            _event(self.body, True, "Revoked", f"revoked {prefixes} and deleted Secret {self.spec.secret_name}")
            outcome.events.append("Revoked")
        return outcome

    async def _blocked(self, decision: Blocked, slot: int, current: ApiKey | None) -> Outcome:
        if decision.suspend and current is not None:
            # The current key and any predecessor still in its grace period: none may work while forbidden.
            for key in await _unrevoked(self.session, self.spec.uid, slot):
                await keys.suspend(self.session, caller=self._as(key.tenant_id), key_id=key.id)
        return Outcome(decision.state, decision.phase, current, slot, current.tenant_id if current else None)

    async def _write_secret(self, new: keys.NewKey, slot: int, existing: V1Secret | None) -> None:
        """Put the plaintext into the Secret before the caller commits the key (see the module docstring)."""
        version = existing.metadata.resource_version if existing is not None and existing.metadata else None
        obj = build_secret(
            self.spec, plaintext=new.plaintext, want=_metadata(self.spec, new.record, slot), resource_version=version
        )
        if existing is None:
            await self.rt.kube.create_secret(self.spec.namespace, obj)
        else:
            await self.rt.kube.replace_secret(self.spec.namespace, self.spec.secret_name, obj)

    def _permissions(self, expires_at: datetime | None = None) -> keys.KeyPermissions:
        """The spec's scopes and networks. No issuer: the operator acts for the whole account, so only the
        tenant's key policy (its maximum lifetime) limits what it mints."""
        return keys.KeyPermissions(
            scopes=self.spec.scopes, allowed_cidrs=self.spec.allowed_cidrs, expires_at=expires_at
        )

    async def _follow_permissions(self, slot: int) -> list[ApiKey]:
        """Give every working key of this ApiKey (the current one, any in a grace period) the spec's permissions."""
        changed = []
        for key in await _unrevoked(self.session, self.spec.uid, slot):
            if await keys.set_permissions(
                self.session,
                caller=self._as(key.tenant_id),
                key_id=key.id,
                scopes=self.spec.scopes,
                allowed_cidrs=self.spec.allowed_cidrs,
            ):
                changed.append(key)
        return changed

    async def _create(
        self, *, tenant_id: str, slot: int, expires_at: datetime | None, rotated_from_id: str | None = None
    ) -> keys.NewKey:
        """The one way this ApiKey's keys are made: its names, source operator, the slot's idempotency reference."""
        return await keys.create(
            self.session,
            caller=self._as(tenant_id),
            name=self.spec.display_name,
            description=self.spec.description,
            source="operator",
            permissions=self._permissions(expires_at),
            external_ref=external_ref(self.spec.uid, slot),
            rotated_from_id=rotated_from_id,
        )

    async def _mint(self, decision: Mint, secret: V1Secret | None) -> Outcome:
        new = await self._create(tenant_id=decision.tenant_id, slot=0, expires_at=decision.expires_at)
        await self._write_secret(new, 0, secret)
        message = (
            f"minted key {new.record.prefix}... ({new.record.id}) for tenant {self.spec.tenant}"
            f" into Secret {self.spec.secret_name}"
        )
        _event(self.body, True, "KeyCreated", message)
        return Outcome(_ready(self.spec), Phase.active, new.record, 0, decision.tenant_id, ["KeyCreated"])

    async def _replace(self, decision: Replace, current: ApiKey, secret: V1Secret | None) -> Outcome:
        ref = external_ref(self.spec.uid, decision.slot)
        if decision.new_tenant_id is not None:
            new = await self._create(
                tenant_id=decision.new_tenant_id,
                slot=decision.slot,
                expires_at=current.expires_at,
                rotated_from_id=current.id,
            )
            await keys.revoke(self.session, caller=self._as(current.tenant_id), key_id=current.id)
        else:
            if decision.resume:
                for key in await _unrevoked(self.session, self.spec.uid, current_slot(decision)):
                    await keys.resume(self.session, caller=self._as(key.tenant_id), key_id=key.id)
            new = await keys.rotate(
                self.session,
                caller=self._as(current.tenant_id),
                key_id=current.id,
                grace_period=decision.grace,
                source="operator",
                external_ref=ref,
                permissions=self._permissions(),
            )
            await keys.rename(
                self.session,
                caller=self._as(new.record.tenant_id),
                key_id=new.record.id,
                name=self.spec.display_name,
                description=self.spec.description,
            )
        await self._write_secret(new, decision.slot, secret)
        message = decision.message
        if decision.grace:
            message += f"; {current.prefix}... keeps working until {iso(current.expires_at)}"
        reason = decision.change.event_reason
        _event(
            self.body,
            decision.change.expected,
            reason,
            f"{message}; new key {new.record.prefix}... in Secret {self.spec.secret_name}",
        )
        return Outcome(_ready(self.spec), Phase.active, new.record, decision.slot, new.record.tenant_id, [reason])

    async def _refresh(self, decision: Refresh, slot: int, current: ApiKey) -> Outcome:
        events = []
        if decision.rename:
            await keys.rename(
                self.session,
                caller=self._as(current.tenant_id),
                key_id=current.id,
                name=self.spec.display_name,
                description=self.spec.description,
            )
        if decision.permissions and await self._follow_permissions(slot):
            networks = ", ".join(self.spec.allowed_cidrs) or "anywhere"
            message = (
                f"key {current.prefix}... now has scopes {', '.join(self.spec.scopes)} from {networks}"
                " (changed in place: the Secret is unchanged)"
            )
            _event(self.body, True, "PermissionsChanged", message)
            events.append("PermissionsChanged")
        if decision.resume:
            for key in await _unrevoked(self.session, self.spec.uid, slot):
                await keys.resume(self.session, caller=self._as(key.tenant_id), key_id=key.id)
            _event(self.body, True, "KeyResumed", f"the policy allows key {current.prefix}... again: it works again")
            events.append("KeyResumed")
        if decision.repair_metadata:
            want = _metadata(self.spec, current, slot)
            await self.rt.kube.patch_secret_metadata(
                self.spec.namespace, self.spec.secret_name, labels=want.labels, annotations=want.annotations
            )
        return Outcome(_ready(self.spec), Phase.active, current, slot, current.tenant_id, events)


# -- status -------------------------------------------------------------------------------------------------------
def apikey_status(spec: ApiKeySpec, status: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    key = outcome.key
    rotation: dict[str, Any] = {"count": outcome.rotation}
    if key is not None:
        if outcome.rotation > 0:
            rotation["lastRotatedAt"] = iso(key.created_at)
        if outcome.phase is Phase.active:
            rotation["nextRotationAt"] = iso(spec.rotation.next_at(key.created_at))
        if key.rotated_from_id:
            rotation["previousKeyId"] = key.rotated_from_id
    delivered = key is not None and outcome.phase in (Phase.active, Phase.suspended)
    return {
        "observedGeneration": spec.generation,
        "phase": outcome.phase.value,
        "keyId": key.id if key else None,
        "prefix": key.prefix if key else None,
        "tenantId": (key.tenant_id if key else None) or outcome.tenant_id,
        # Revocation deletes the Secret; otherwise a Secret once named stays named.
        "secretName": spec.secret_name
        if delivered
        else None
        if outcome.phase is Phase.revoked
        else status.get("secretName"),
        "createdAt": iso(key.created_at) if key else None,
        "expiresAt": iso(key.expires_at) if key else None,
        "lastUsedAt": iso(key.last_used_at) if key else None,
        "requestCount": key.request_count if key else None,
        "rotation": rotation,
    }


async def _report(rt: OperatorRuntime, body: Mapping[str, Any], spec: ApiKeySpec, outcome: Outcome) -> None:
    status = body.get("status") or {}
    await _patch_ready(rt, body, spec, outcome.state, apikey_status(spec, status, outcome), posted=outcome.events)


async def _patch_ready(
    rt: OperatorRuntime,
    body: Mapping[str, Any],
    spec: ApiKeySpec,
    state: ReadyState,
    extra: Mapping[str, Any],
    *,
    posted: list[str] | None = None,
) -> None:
    """Patch the status (only what differs) and post an event when the Ready condition changes."""
    status = body.get("status") or {}
    previous = ready_of(status)
    desired = {**extra, "conditions": [ready_condition(state, generation=spec.generation, previous=previous)]}
    patch = status_patch(status, desired)
    if patch:
        await rt.kube.patch_apikey_status(spec.namespace, spec.name, patch)
    changed = previous is None or (previous.get("status"), previous.get("reason")) != (state.status, state.reason)
    if changed and not posted:
        _event(body, state.ready, state.reason, state.message)


async def _tenant(session: AsyncSession, name: str, cr: Mapping[str, Any] | None) -> TenantView:
    try:
        record = await accounts.account_named(session, name=name)
    except NotFound:
        found = None
    else:
        found = TenantRecord(id=record.id, name=record.name, suspended=record.suspended)
    return TenantView(spec=TenantSpec.from_body(cr) if cr is not None else None, record=found)


async def _run(rt: OperatorRuntime, body: Mapping[str, Any], spec: ApiKeySpec) -> None:
    # Kubernetes reads first, so the database transaction (and SQLite's one writer) is not held across them.
    secret = await rt.kube.read_secret(spec.namespace, spec.secret_name)
    tenant_cr = await rt.kube.read_tenant(spec.tenant)
    try:
        async with rt.unit_of_work() as session:
            slot, record = await latest_key(session, spec.uid, spec.rotation_count)
            tenant = await _tenant(session, spec.tenant, tenant_cr)
            decision = plan(spec, _current(record, slot), tenant, _secret_view(spec, secret, record, slot), utcnow())
            outcome = await _Executor(rt, body, spec, session).apply(decision, slot, record, secret)
    except InvalidInput as exc:
        # Nothing was committed. Said on the object (not a Kopf retry loop); the next change or sync tries again.
        state = ReadyState(False, KEY_REFUSED, f"VibeXP refused the key: {exc}")
        phase = (body.get("status") or {}).get("phase") or Phase.pending.value
        await _patch_ready(rt, body, spec, state, {"observedGeneration": spec.generation, "phase": phase})
        return
    except KubeApiError as exc:
        if not exc.refused:
            raise
        # The apiserver refused the Secret built from this spec (nothing was committed): say so, do not retry.
        state = ReadyState(False, INVALID_SECRET, f"the apiserver refused Secret {spec.secret_name}: {exc.message}")
        phase = (body.get("status") or {}).get("phase") or Phase.pending.value
        await _patch_ready(rt, body, spec, state, {"observedGeneration": spec.generation, "phase": phase})
        return
    if isinstance(decision, Revoke):
        await _delete_own_secret(rt, spec)
    await _report(rt, body, spec, outcome)


async def _delete_own_secret(rt: OperatorRuntime, spec: ApiKeySpec) -> None:
    secret = await rt.kube.read_secret(spec.namespace, spec.secret_name)
    if secret is not None and secret.metadata is not None and is_owned_by(secret, spec.uid):
        await rt.kube.delete_secret(spec.namespace, spec.secret_name, uid=str(secret.metadata.uid))


# -- entry points used by the handlers --------------------------------------------------------------------------
async def reconcile_apikey(rt: OperatorRuntime, body: Mapping[str, Any], *, fresh: bool = False) -> None:
    """Drive one ApiKey to its desired state (re-reading it under its lock first, unless ``fresh``)."""
    meta = body["metadata"]
    async with rt.lock(meta["uid"]):
        current: Mapping[str, Any] | None = body
        if not fresh:
            current = await rt.kube.read_apikey(meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"] or current["metadata"].get("deletionTimestamp"):
            return
        try:
            spec = ApiKeySpec.from_body(current)
        except SpecError as exc:
            await _report_invalid(rt, current, str(exc))
            return
        await _run(rt, current, spec)


async def _report_invalid(rt: OperatorRuntime, body: Mapping[str, Any], message: str) -> None:
    meta = body["metadata"]
    generation = int(meta.get("generation") or 0)
    previous = ready_of(body.get("status"))
    condition = ready_condition(ReadyState(False, INVALID_SPEC, message), generation=generation, previous=previous)
    patch = status_patch(body.get("status"), {"observedGeneration": generation, "conditions": [condition]})
    if patch:
        await rt.kube.patch_apikey_status(meta["namespace"], meta["name"], patch)
    if previous is None or previous.get("reason") != INVALID_SPEC:
        _event(body, False, INVALID_SPEC, message)


async def delete_apikey(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Finalizer: revoke every key of this ApiKey, then delete its Secret. Raises while the database is down."""
    spec = ApiKeySpec.from_body({**body, "spec": {**(body.get("spec") or {}), "expiresAt": None}})
    async with rt.lock(spec.uid):
        async with rt.unit_of_work() as session:
            n, current = await latest_key(session, spec.uid, spec.rotation_count)
            upto = n if current is not None else n - 1
            revoked = await _revoke_all(session, spec.uid, upto, actor=operator_actor(spec))
        await _delete_own_secret(rt, spec)
    if revoked:
        prefixes = ", ".join(f"{k.prefix}..." for k in revoked)
        _event(body, True, "Revoked", f"ApiKey deleted: revoked {prefixes} and deleted Secret {spec.secret_name}")
    rt.forget(spec.uid)


async def sync_apikey(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Periodic: the full reconcile on the watched body (it verifies the Secret and the key, patches only changes).

    Final phases (Revoked, Expired) and specs the apiserver refused are skipped: only a spec change, which the update
    handler sees, can change them.
    """
    status = body.get("status") or {}
    if body["metadata"].get("deletionTimestamp") or status.get("phase") in (Phase.revoked.value, Phase.expired.value):
        return
    ready = ready_of(status) or {}
    if ready.get("reason") in NEEDS_SPEC_CHANGE and status.get("observedGeneration") == body["metadata"].get(
        "generation"
    ):
        return
    await reconcile_apikey(rt, body, fresh=True)


async def report_apikey_outage(rt: OperatorRuntime, body: Mapping[str, Any], cause: str) -> None:
    """The database is unreachable: say so on the ApiKey (a key being deleted never keeps showing Ready=True)."""
    spec = ApiKeySpec.from_body({**body, "spec": {**(body.get("spec") or {}), "expiresAt": None}})
    if spec.deleting:
        state = ReadyState(
            False,
            "RevocationPending",
            f"the ApiKey is being deleted; its key is revoked once the VibeXP database is reachable ({cause})",
        )
    else:
        state = ReadyState(
            None, "DatabaseUnavailable", f"the VibeXP database is unreachable ({cause}); retrying with backoff"
        )
    await _patch_ready(rt, body, spec, state, {})
