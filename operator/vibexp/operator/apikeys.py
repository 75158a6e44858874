"""ApiKey reconciliation: mint once, deliver through a Secret, repair drift, rotate, revoke, report status.

One level-based function, :func:`reconcile_apikey`, is called by every trigger (create/update/resume, the sync
timer when something is off, Secret events), always under the object's lock and on a freshly read object, and
drives the object to its desired state from three sources of truth:

* the database: the ApiKey's n-th key has ``external_ref = "k8s:<uid>:<n>"`` (unique), so the newest key is found
  by looking refs up, whatever the status says — a crash between any two steps never mints twice;
* the Secret: the plaintext exists only there; it is written *inside* the database transaction that mints the
  key (commit after the Secret is written), so a committed key always reached its Secret;
* the spec: tenant, names, revocation, rotation requests and schedule.

The plaintext key is never logged: it travels from ``create_key`` straight into the Secret body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import kopf
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.clock import utcnow
from vibexp.core.errors import NotFound
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.operator.resources import (
    ANN_TRIGGER,
    apikey_path,
    external_ref,
    secret_path,
    tenant_path,
)
from vibexp.operator.runtime import OperatorRuntime
from vibexp.operator.secrets import build_secret, holds_key, is_owned_by, metadata_drift
from vibexp.operator.status import ReadyState, iso, ready_condition, ready_of, status_patch

__all__ = ["delete_apikey", "desired_name", "latest_key", "reconcile_apikey", "sync_apikey"]

log = logging.getLogger(__name__)


#: Ready=False reasons that no periodic re-check can change.
TERMINAL_REASONS = frozenset({"Revoked", "RevokedElsewhere", "Expired"})


def desired_name(body: Mapping[str, Any]) -> str:
    meta, spec = body["metadata"], body.get("spec") or {}
    return str(spec.get("displayName") or f"{meta['namespace']}/{meta['name']}")


async def latest_key(session: AsyncSession, uid: str, start: int = 0) -> tuple[int, ApiKey | None]:
    """The newest key minted for this ApiKey and its rotation number; (slot to use, None) when none exists."""
    n = max(0, start)
    current = await keys.find_key_by_external_ref(session, external_ref=external_ref(uid, n))
    while current is None and n > 0:  # the status ran ahead of the database (never expected, but be safe)
        n -= 1
        current = await keys.find_key_by_external_ref(session, external_ref=external_ref(uid, n))
    if current is None:
        return n, None
    while True:
        newer = await keys.find_key_by_external_ref(session, external_ref=external_ref(uid, n + 1))
        if newer is None:
            return n, current
        n, current = n + 1, newer


async def _revoke_all(session: AsyncSession, uid: str, upto: int) -> list[ApiKey]:
    """Revoke every still-active key this ApiKey ever minted (the current one and any in a grace period)."""
    revoked = []
    for n in range(upto + 1):
        key = await keys.find_key_by_external_ref(session, external_ref=external_ref(uid, n))
        if key is not None and key.status != KeyStatus.revoked.value:
            revoked.append(await keys.revoke_key(session, key=key))
    return revoked


def _event(body: Mapping[str, Any], ok: bool, reason: str, message: str) -> None:
    """A Kubernetes event on the ApiKey, and the same line in the operator's log (prefixes only, never a key)."""
    meta = body["metadata"]
    log.log(
        logging.INFO if ok else logging.WARNING,
        "ApiKey %s/%s: %s: %s",
        meta.get("namespace"),
        meta.get("name"),
        reason,
        message,
    )
    kopf.event(dict(body), type="Normal" if ok else "Warning", reason=reason, message=message)


@dataclass
class _Outcome:
    """What one reconcile decided: the Ready state, the key shown in status, and the events already posted."""

    state: ReadyState
    phase: str
    key: ApiKey | None = None
    rotation: int = 0
    tenant_id: str | None = None
    events: list[str] = field(default_factory=list)


class _ApiKeyReconcile:
    def __init__(self, rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
        self.rt = rt
        self.body = body
        self.meta = body["metadata"]
        self.spec: Mapping[str, Any] = body.get("spec") or {}
        self.status: Mapping[str, Any] = body.get("status") or {}
        self.uid: str = self.meta["uid"]
        self.ns: str = self.meta["namespace"]
        self.name: str = self.meta["name"]
        self.secret_name: str = self.status.get("secretName") or self.spec.get("secretName") or self.name
        self.trigger: str = (self.spec.get("rotation") or {}).get("trigger") or ""
        self.grace = timedelta(seconds=int((self.spec.get("rotation") or {}).get("gracePeriodSeconds") or 0))

    # -- entry point --------------------------------------------------------------------------------------------
    async def run(self) -> None:
        start = int((self.status.get("rotation") or {}).get("count") or 0)
        secret_to_delete = False
        async with self.rt.unit_of_work() as session:
            n, current = await latest_key(session, self.uid, start)
            if self.spec.get("revoked"):
                outcome = await self._revoke(session, n, current)
                secret_to_delete = True
            else:
                outcome = await self._converge(session, n, current)
        if secret_to_delete:
            await self._delete_own_secret()
        await self._report(outcome)

    # -- revocation ---------------------------------------------------------------------------------------------
    async def _revoke(self, session: AsyncSession, n: int, current: ApiKey | None) -> _Outcome:
        revoked = await _revoke_all(session, self.uid, n if current is not None else n - 1)
        outcome = _Outcome(ReadyState(False, "Revoked", "revoked by spec.revoked"), "Revoked", current, n)
        if revoked:
            prefixes = ", ".join(f"{k.prefix}..." for k in revoked)
            _event(self.body, True, "Revoked", f"revoked {prefixes} and deleted Secret {self.secret_name}")
            outcome.events.append("Revoked")
        return outcome

    async def _delete_own_secret(self) -> None:
        secret = await self.rt.kube.get(secret_path(self.ns, self.secret_name))
        if secret is not None and is_owned_by(secret, self.uid):
            await self.rt.kube.delete(secret_path(self.ns, self.secret_name), uid=secret["metadata"]["uid"])

    # -- the normal path ----------------------------------------------------------------------------------------
    async def _tenant(self, session: AsyncSession) -> tuple[Tenant | None, ReadyState | None]:
        """The tenant, or why this namespace may not hold its keys now."""
        tenant_name = self.spec.get("tenant", "")
        cr = await self.rt.kube.get(tenant_path(tenant_name))
        if cr is None or cr["metadata"].get("deletionTimestamp"):
            return None, ReadyState(False, "TenantNotFound", f"no VibeXPTenant named {tenant_name!r}")
        allowed = (cr.get("spec") or {}).get("allowedNamespaces") or []
        if "*" not in allowed and self.ns not in allowed:
            return None, ReadyState(
                False,
                "NamespaceNotAllowed",
                f"VibeXPTenant {tenant_name} does not allow keys in namespace {self.ns} (spec.allowedNamespaces)",
            )
        if (cr.get("spec") or {}).get("suspended"):
            return None, ReadyState(False, "TenantSuspended", f"VibeXPTenant {tenant_name} is suspended")
        try:
            tenant = await tenants.get_tenant_by_name(session, name=tenant_name)
        except NotFound:
            return None, ReadyState(False, "TenantNotReady", f"tenant {tenant_name} is not in the database yet")
        if tenant.suspended:
            return None, ReadyState(False, "TenantSuspended", f"tenant {tenant_name} is suspended")
        return tenant, None

    async def _converge(self, session: AsyncSession, n: int, current: ApiKey | None) -> _Outcome:
        if current is not None and current.status == KeyStatus.revoked.value:
            return _Outcome(
                ReadyState(False, "RevokedElsewhere", f"key {current.prefix}... was revoked outside Kubernetes"),
                "Revoked",
                current,
                n,
                current.tenant_id,
            )
        if current is not None and current.expires_at is not None and current.expires_at <= utcnow():
            return _Outcome(
                ReadyState(False, "Expired", f"key expired at {iso(current.expires_at)}"), "Expired", current, n
            )
        tenant, problem = await self._tenant(session)
        if problem is not None or tenant is None:
            assert problem is not None
            phase = "Active" if current is not None else "Pending"
            return _Outcome(problem, phase, current, n, current.tenant_id if current else None)

        secret = await self.rt.kube.get(secret_path(self.ns, self.secret_name))
        if secret is not None and not is_owned_by(secret, self.uid):
            message = f"Secret {self.secret_name} exists and is not owned by this ApiKey; it is left untouched"
            phase = "Active" if current is not None else "Pending"
            return _Outcome(ReadyState(False, "SecretConflict", message), phase, current, n, tenant.id)

        if current is None:
            return await self._mint(session, tenant, n, secret)
        return await self._maintain(session, tenant, n, current, secret)

    async def _mint(self, session: AsyncSession, tenant: Tenant, n: int, secret: Mapping[str, Any] | None) -> _Outcome:
        expires_at = _parse_time(self.spec.get("expiresAt"))
        if expires_at is not None and expires_at <= utcnow():
            return _Outcome(
                ReadyState(False, "Expired", "spec.expiresAt is in the past"), "Expired", None, n, tenant.id
            )
        new = await keys.create_key(
            session,
            tenant_id=tenant.id,
            name=desired_name(self.body),
            description=self.spec.get("description") or "",
            source="operator",
            expires_at=expires_at,
            external_ref=external_ref(self.uid, n),
        )
        await self._write_secret(new, n, secret)
        _event(
            self.body,
            True,
            "KeyCreated",
            f"minted key {new.record.prefix}... ({new.record.id}) for tenant {tenant.name}"
            f" into Secret {self.secret_name}",
        )
        return _Outcome(
            ReadyState(True, "KeyReady", f"key delivered in Secret {self.secret_name}"),
            "Active",
            new.record,
            n,
            tenant.id,
            ["KeyCreated"],
        )

    async def _write_secret(self, new: keys.NewKey, n: int, existing: Mapping[str, Any] | None) -> None:
        """Put the plaintext into the Secret before the caller commits the key (see the module docstring)."""
        obj = build_secret(
            self.body,
            name=self.secret_name,
            plaintext=new.plaintext,
            key_id=new.record.id,
            prefix=new.record.prefix,
            rotation=n,
            trigger=self.trigger,
        )
        if existing is None:
            await self.rt.kube.create(secret_path(self.ns), obj)
        else:
            obj["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            await self.rt.kube.replace(secret_path(self.ns, self.secret_name), obj)

    async def _maintain(
        self, session: AsyncSession, tenant: Tenant, n: int, current: ApiKey, secret: Mapping[str, Any] | None
    ) -> _Outcome:
        now = utcnow()
        every = (self.spec.get("rotation") or {}).get("everyDays")
        why: tuple[str, str, bool, timedelta] | None = None  # (reason, message, ok, grace)
        if current.tenant_id != tenant.id:
            why = (
                "TenantChanged",
                f"moved to tenant {tenant.name}: new key minted, old key revoked",
                True,
                timedelta(0),
            )
        elif secret is None:
            why = (
                "SecretDrift",
                f"Secret {self.secret_name} was deleted; the key cannot be recovered (only its hash is stored), "
                f"so it was rotated and {current.prefix}... revoked",
                False,
                timedelta(0),
            )
        elif not holds_key(secret, current.key_hash):
            why = (
                "SecretDrift",
                f"Secret {self.secret_name} no longer holds key {current.prefix}...; rotated to a new key and "
                f"revoked {current.prefix}...",
                False,
                timedelta(0),
            )
        elif self.trigger and self.trigger != ((secret.get("metadata") or {}).get("annotations") or {}).get(
            ANN_TRIGGER, ""
        ):
            why = ("Rotated", f"rotation requested (trigger {self.trigger!r})", True, self.grace)
        elif every and current.created_at + timedelta(days=int(every)) <= now:
            why = ("Rotated", f"scheduled rotation: the key is {every} days old", True, self.grace)

        if why is not None:
            reason, message, ok, grace = why
            if reason == "TenantChanged":
                new = await keys.create_key(
                    session,
                    tenant_id=tenant.id,
                    name=desired_name(self.body),
                    description=self.spec.get("description") or "",
                    source="operator",
                    expires_at=current.expires_at,
                    external_ref=external_ref(self.uid, n + 1),
                    rotated_from_id=current.id,
                )
                await keys.revoke_key(session, key=current)
            else:
                new = await keys.rotate_key(
                    session,
                    key=current,
                    grace_period=grace,
                    source="operator",
                    external_ref=external_ref(self.uid, n + 1),
                )
            await keys.update_key(
                session, key=new.record, name=desired_name(self.body), description=self.spec.get("description") or ""
            )
            await self._write_secret(new, n + 1, secret)
            if grace:
                message += f"; {current.prefix}... keeps working until {iso(current.expires_at)}"
            _event(self.body, ok, reason, f"{message}; new key {new.record.prefix}... in Secret {self.secret_name}")
            return _Outcome(
                ReadyState(True, "KeyReady", f"key delivered in Secret {self.secret_name}"),
                "Active",
                new.record,
                n + 1,
                tenant.id,
                [reason],
            )

        name, description = desired_name(self.body), self.spec.get("description") or ""
        if current.name != name or current.description != description:
            await keys.update_key(session, key=current, name=name, description=description)
        assert secret is not None
        meta_patch = metadata_drift(self.body, secret)
        if meta_patch is not None:
            await self.rt.kube.merge_patch(secret_path(self.ns, self.secret_name), meta_patch)
        return _Outcome(
            ReadyState(True, "KeyReady", f"key delivered in Secret {self.secret_name}"), "Active", current, n, tenant.id
        )

    # -- status -------------------------------------------------------------------------------------------------
    async def _report(self, outcome: _Outcome) -> None:
        previous = ready_of(self.status)
        generation = int(self.meta.get("generation") or 0)
        desired = apikey_status(self.body, outcome, generation, previous)
        patch = status_patch(self.status, desired)
        if patch:
            await self.rt.kube.merge_patch(
                apikey_path(self.ns, self.name, status=True), {"status": patch}, missing_ok=True
            )
        changed = previous is None or (previous.get("status"), previous.get("reason")) != (
            "True" if outcome.state.ready else "False",
            outcome.state.reason,
        )
        if changed and not outcome.events:
            _event(self.body, outcome.state.ready, outcome.state.reason, outcome.state.message)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def apikey_status(
    body: Mapping[str, Any], outcome: _Outcome, generation: int, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    key = outcome.key
    every = (spec.get("rotation") or {}).get("everyDays")
    rotation: dict[str, Any] = {"count": outcome.rotation}
    if key is not None:
        if outcome.rotation > 0:
            rotation["lastRotatedAt"] = iso(key.created_at)
        if every and outcome.phase == "Active":
            rotation["nextRotationAt"] = iso(key.created_at + timedelta(days=int(every)))
        if key.rotated_from_id:
            rotation["previousKeyId"] = key.rotated_from_id
    secret_name = status.get("secretName") or spec.get("secretName") or body["metadata"]["name"]
    return {
        "observedGeneration": generation,
        "phase": outcome.phase,
        "keyId": key.id if key else None,
        "prefix": key.prefix if key else None,
        "tenantId": (key.tenant_id if key else None) or outcome.tenant_id,
        "secretName": (
            secret_name
            if key is not None and outcome.phase == "Active"
            else None
            if outcome.state.reason == "Revoked"  # its Secret was deleted with the revocation
            else status.get("secretName")
        ),
        "createdAt": iso(key.created_at) if key else None,
        "expiresAt": iso(key.expires_at) if key else None,
        "lastUsedAt": iso(key.last_used_at) if key else None,
        "requestCount": key.request_count if key else None,
        "rotation": rotation,
        "conditions": [ready_condition(outcome.state, generation=generation, previous=previous)],
    }


# -- entry points used by the handlers --------------------------------------------------------------------------
async def reconcile_apikey(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Drive one ApiKey to its desired state (re-reading it under its lock first)."""
    meta = body["metadata"]
    async with rt.lock(meta["uid"]):
        fresh = await rt.kube.get(apikey_path(meta["namespace"], meta["name"]))
        if fresh is None or fresh["metadata"]["uid"] != meta["uid"] or fresh["metadata"].get("deletionTimestamp"):
            return
        await _ApiKeyReconcile(rt, fresh).run()


async def delete_apikey(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Finalizer: revoke every key of this ApiKey, then delete its Secret. Raises while the database is down."""
    meta = body["metadata"]
    uid = meta["uid"]
    job = _ApiKeyReconcile(rt, body)
    async with rt.lock(uid):
        start = int((job.status.get("rotation") or {}).get("count") or 0)
        async with rt.unit_of_work() as session:
            n, current = await latest_key(session, uid, start)
            revoked = await _revoke_all(session, uid, n if current is not None else n - 1)
        await job._delete_own_secret()
    if revoked:
        prefixes = ", ".join(f"{k.prefix}..." for k in revoked)
        _event(body, True, "Revoked", f"ApiKey deleted: revoked {prefixes} and deleted Secret {job.secret_name}")
    rt.forget(uid)


async def sync_apikey(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Periodic: copy usage into status when it changed; hand anything else that is off to the full reconcile."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    if meta.get("deletionTimestamp"):
        return
    ready = ready_of(status)
    key_id = status.get("keyId")
    if status.get("phase") in ("Revoked", "Expired") and (ready or {}).get("reason") in TERMINAL_REASONS:
        return  # final states: only a spec change (handled by the update handler) can matter
    if ready is None or ready.get("status") != "True" or not key_id:
        await reconcile_apikey(rt, body)
        return
    async with rt.unit_of_work() as session:
        try:
            key: ApiKey | None = await keys.get_key(session, key_id=key_id)
        except NotFound:
            key = None
    every = (spec.get("rotation") or {}).get("everyDays")
    if (
        key is None
        or key.status != KeyStatus.active.value
        or (key.expires_at is not None and key.expires_at <= utcnow())
        or key.name != desired_name(body)
        or key.description != (spec.get("description") or "")
        or (every and key.created_at + timedelta(days=int(every)) <= utcnow())
    ):
        await reconcile_apikey(rt, body)
        return
    patch = status_patch(status, {"lastUsedAt": iso(key.last_used_at), "requestCount": key.request_count})
    if patch:
        await rt.kube.merge_patch(
            apikey_path(meta["namespace"], meta["name"], status=True), {"status": patch}, missing_ok=True
        )
