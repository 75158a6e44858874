"""Applies one planner decision (:mod:`vibexp.operator.plan`) inside the reconcile's database transaction: mint,
rotate or re-home, revoke, suspend or resume, follow the spec's permissions, repair the Secret's metadata.

A new key's plaintext goes from ``create_key`` straight into the Secret, written before the caller commits the key
(see :mod:`vibexp.operator.apikeys`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client import V1Secret
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, ActorType, Caller
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.models import ApiKey
from vibexp.operator.apikeys.observe import secret_metadata, unrevoked
from vibexp.operator.apikeys.status import Outcome, event, ready
from vibexp.operator.models import ApiKeySpec
from vibexp.operator.plan import Blocked, Decision, Mint, Phase, Refresh, Replace, Revoke
from vibexp.operator.resources import external_ref
from vibexp.operator.runtime import OperatorRuntime
from vibexp.operator.secrets import build_secret
from vibexp.operator.status import ReadyState, iso

__all__ = ["Executor", "current_slot", "operator_actor", "revoke_all"]


def operator_actor(spec: ApiKeySpec) -> Actor:
    """The audit trail's actor for what the operator does to an ApiKey's keys: the object it reconciled."""
    where = f"{spec.namespace}/{spec.name}"
    return Actor(ActorType.operator, id=where, name=f"operator (ApiKey {where})")


async def revoke_all(session: AsyncSession, uid: str, upto: int, *, actor: Actor) -> list[ApiKey]:
    return [
        await keys.revoke(session, caller=Caller.operator(key.tenant_id, actor=actor), key_id=key.id)
        for key in await unrevoked(session, uid, upto)
    ]


def current_slot(decision: Replace) -> int:
    return decision.slot - 1


class Executor:
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
        revoked = await revoke_all(self.session, self.spec.uid, upto, actor=self.actor)
        outcome = Outcome(ReadyState(False, "Revoked", "revoked by spec.revoked"), Phase.revoked, current, slot)
        if revoked:
            prefixes = ", ".join(f"{k.prefix}..." for k in revoked)
            event(self.body, True, "Revoked", f"revoked {prefixes} and deleted Secret {self.spec.secret_name}")
            outcome.events.append("Revoked")
        return outcome

    async def _blocked(self, decision: Blocked, slot: int, current: ApiKey | None) -> Outcome:
        if decision.suspend and current is not None:
            # The current key and any predecessor still in its grace period: none may work while forbidden.
            for key in await unrevoked(self.session, self.spec.uid, slot):
                await keys.suspend(self.session, caller=self._as(key.tenant_id), key_id=key.id)
        return Outcome(decision.state, decision.phase, current, slot, current.tenant_id if current else None)

    async def _write_secret(self, new: keys.NewKey, slot: int, existing: V1Secret | None) -> None:
        """Put the plaintext into the Secret before the caller commits the key (see the package docstring)."""
        version = existing.metadata.resource_version if existing is not None and existing.metadata else None
        obj = build_secret(
            self.spec,
            plaintext=new.plaintext,
            want=secret_metadata(self.spec, new.record, slot),
            resource_version=version,
        )
        if existing is None:
            await self.rt.kube.create_secret(self.spec.namespace, obj)
        else:
            await self.rt.kube.replace_secret(self.spec.namespace, self.spec.secret_name, obj)

    def _permissions(self, expires_at: datetime | None = None) -> keys.KeyPermissions:
        """The spec's scopes and networks. No issuer: the operator acts for the whole account, so only the
        tenant's key policy (its maximum lifetime) limits what it mints."""
        return keys.KeyPermissions(
            scopes=self.spec.scopes,
            allowed_cidrs=self.spec.allowed_cidrs,
            expires_at=expires_at,
            confirm_destructive=self.spec.confirm_destructive,
        )

    async def _follow_permissions(self, slot: int) -> list[ApiKey]:
        """Give every working key of this ApiKey (the current one, any in a grace period) the spec's permissions."""
        changed = []
        for key in await unrevoked(self.session, self.spec.uid, slot):
            if await keys.set_permissions(
                self.session,
                caller=self._as(key.tenant_id),
                key_id=key.id,
                scopes=self.spec.scopes,
                allowed_cidrs=self.spec.allowed_cidrs,
                confirm_destructive=self.spec.confirm_destructive,
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
        event(self.body, True, "KeyCreated", message)
        return Outcome(ready(self.spec), Phase.active, new.record, 0, decision.tenant_id, ["KeyCreated"])

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
                for key in await unrevoked(self.session, self.spec.uid, current_slot(decision)):
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
        event(
            self.body,
            decision.change.expected,
            reason,
            f"{message}; new key {new.record.prefix}... in Secret {self.spec.secret_name}",
        )
        return Outcome(ready(self.spec), Phase.active, new.record, decision.slot, new.record.tenant_id, [reason])

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
                + (", destructive MCP tools asking first" if self.spec.confirm_destructive else "")
                + " (changed in place: the Secret is unchanged)"
            )
            event(self.body, True, "PermissionsChanged", message)
            events.append("PermissionsChanged")
        if decision.resume:
            for key in await unrevoked(self.session, self.spec.uid, slot):
                await keys.resume(self.session, caller=self._as(key.tenant_id), key_id=key.id)
            event(self.body, True, "KeyResumed", f"the policy allows key {current.prefix}... again: it works again")
            events.append("KeyResumed")
        if decision.repair_metadata:
            want = secret_metadata(self.spec, current, slot)
            await self.rt.kube.patch_secret_metadata(
                self.spec.namespace, self.spec.secret_name, labels=want.labels, annotations=want.annotations
            )
        return Outcome(ready(self.spec), Phase.active, current, slot, current.tenant_id, events)
