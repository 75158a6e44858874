"""VibeXPTenant reconciliation: the tenant record of the same name follows the spec; counters go into status;
``spec.owners`` becomes owner memberships (:mod:`vibexp.operator.owners`), reported in ``status.owners`` and the
``OwnersReconciled`` condition.

A VibeXPTenant adopts an existing tenant of its name (one made with ``vibexp tenant create``, or by an earlier
VibeXPTenant). Deleting the VibeXPTenant suspends the tenant instead of deleting it: its prompts, artifacts and
memories stay, its keys stop working (403 ``account_suspended``), and re-creating the VibeXPTenant resumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from vibexp.core import account
from vibexp.core.access import Actor, ActorType, Caller
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.models import KeyStatus
from vibexp.core.tenants import usecases as accounts
from vibexp.core.tenants.models import Tenant, Tier
from vibexp.core.tenants.schemas import TenantCreate, TenantUpdate
from vibexp.operator.alerts import SecretRefRefused, WebhookSecretMissing, alert_settings
from vibexp.operator.apikeys import reconcile_apikey
from vibexp.operator.events import post_event
from vibexp.operator.owners import CONDITION as OWNERS_CONDITION
from vibexp.operator.owners import OwnersReport, reconcile_owners
from vibexp.operator.runtime import OperatorRuntime
from vibexp.operator.status import (
    ReadyState,
    condition,
    condition_of,
    ready_condition,
    ready_of,
    status_patch,
    with_conditions,
)

__all__ = ["reconcile_tenant", "report_tenant_outage", "suspend_tenant", "sync_tenant"]

log = logging.getLogger(__name__)


def _key_policy(spec: Mapping[str, Any]) -> dict[str, Any]:
    """spec.keyPolicy as tenant fields. Unlike spec.alerts, an absent policy (or field) is applied as "no such
    rule": a policy is a security control the VibeXPTenant owns, so removing it from the spec removes it."""
    policy = spec.get("keyPolicy") or {}
    return {
        "max_key_lifetime_days": policy.get("maxLifetimeDays"),
        "revoke_unused_after_days": policy.get("revokeUnusedAfterDays"),
    }


def _changes(tenant: Tenant, spec: Mapping[str, Any], name: str, alerts: Mapping[str, Any] | None) -> dict[str, Any]:
    wanted: dict[str, Any] = {
        "display_name": spec.get("displayName") or name,
        "tier": spec.get("tier") or Tier.free.value,
        "rate_limit_per_hour": spec.get("rateLimitPerHour"),
        "suspended": bool(spec.get("suspended")),
        **_key_policy(spec),
        **(alerts or {}),
    }
    return {field: value for field, value in wanted.items() if getattr(tenant, field) != value}


def tenant_actor(name: str) -> Actor:
    """The audit trail's actor for what the operator does to a tenant: the VibeXPTenant it reconciled."""
    return Actor(ActorType.operator, id=name, name=f"operator (VibeXPTenant {name})")


def _caller(tenant: Tenant, name: str) -> Caller:
    """The operator as the ``Caller`` of the account a VibeXPTenant names (the whole account)."""
    return Caller.operator(tenant.id, actor=tenant_actor(name))


async def _counters(rt: OperatorRuntime, tenant: Tenant) -> dict[str, Any]:
    async with rt.unit_of_work() as session:
        caller = Caller.operator(tenant.id, actor=tenant_actor(tenant.name))
        active = len(await keys.list_keys(session, caller=caller, status=KeyStatus.active))
    return {
        "tenantId": tenant.id,
        "hourlyLimit": tenant.hourly_limit,
        "activeKeys": active,
        "requestsThisHour": await rt.limiter.current_use(tenant_id=tenant.id),
    }


async def _patch_status(rt: OperatorRuntime, body: Mapping[str, Any], desired: Mapping[str, Any]) -> None:
    patch = status_patch(body.get("status") or {}, desired)
    if patch:
        await rt.kube.patch_tenant_status(body["metadata"]["name"], patch)


def _owners_condition(body: Mapping[str, Any], owners: OwnersReport) -> dict[str, Any] | None:
    """The OwnersReconciled condition; None (removed) when spec.owners asks nothing."""
    if owners.condition is None:
        return None
    generation = int(body["metadata"].get("generation") or 0)
    previous = condition_of(body.get("status"), OWNERS_CONDITION)
    return condition(OWNERS_CONDITION, owners.condition, generation=generation, previous=previous)


def _owners_status(body: Mapping[str, Any], owners: OwnersReport) -> dict[str, Any]:
    """status.owners and the conditions with OwnersReconciled set (for a patch that leaves Ready alone)."""
    status = body.get("status")
    made = _owners_condition(body, owners)
    if made is None and condition_of(status, OWNERS_CONDITION) is None:
        return {"owners": owners.status()}  # no condition to set or remove: the conditions are left alone
    return {"owners": owners.status(), "conditions": with_conditions(status, {OWNERS_CONDITION: made})}


async def _report(
    rt: OperatorRuntime,
    body: Mapping[str, Any],
    state: ReadyState,
    extra: Mapping[str, Any],
    owners: OwnersReport | None = None,
) -> None:
    """Patch the Ready condition and ``extra``; with ``owners`` also status.owners and OwnersReconciled (without,
    they stay as they are)."""
    status = body.get("status")
    previous = ready_of(status)
    generation = int(body["metadata"].get("generation") or 0)
    replaced: dict[str, dict[str, Any] | None] = {
        "Ready": ready_condition(state, generation=generation, previous=previous)
    }
    desired: dict[str, Any] = {**extra, "observedGeneration": generation}
    if owners is not None:
        replaced[OWNERS_CONDITION] = _owners_condition(body, owners)
        desired["owners"] = owners.status()
    desired["conditions"] = with_conditions(status, replaced)
    await _patch_status(rt, body, desired)
    if previous is None or (previous.get("status"), previous.get("reason")) != (state.status, state.reason):
        post_event(body, warning=not state.ready, reason=state.reason, message=state.message)


async def reconcile_tenant(rt: OperatorRuntime, body: Mapping[str, Any], *, kick_all: bool) -> None:
    """Create, adopt or update the tenant record; then re-check the ApiKeys that depend on it."""
    name = body["metadata"]["name"]
    spec = body.get("spec") or {}
    # spec.alerts' Secret is read first (outside the transaction). Missing, everything else is still applied and
    # the alert settings stay as they were; the Ready condition says why and the reconcile is retried.
    waiting_for: str | None = None
    try:
        alerts = await alert_settings(rt, spec)
    except WebhookSecretMissing as exc:
        alerts, waiting_for = None, str(exc)
    except SecretRefRefused as exc:
        await _report(rt, body, ReadyState(False, "InvalidSpec", str(exc)[:1000]), {})
        raise kopf.PermanentError(str(exc)) from exc
    try:
        async with rt.unit_of_work() as session:
            try:
                tenant = await accounts.account_named(session, name=name)
            except NotFound:
                tenant = await accounts.create_account(
                    session,
                    data=TenantCreate(
                        name=name,
                        display_name=spec.get("displayName") or name,
                        tier=Tier(spec.get("tier") or Tier.free.value),
                        rate_limit_per_hour=spec.get("rateLimitPerHour"),
                        suspended=bool(spec.get("suspended")),
                    ),
                )
                post_event(body, warning=False, reason="TenantCreated", message=f"created tenant {name}")
            changes = _changes(tenant, spec, name, alerts)
            if changes:
                tenant = await account.update_account(
                    session, caller=_caller(tenant, name), data=TenantUpdate.model_validate(changes)
                )
                post_event(
                    body,
                    warning=False,
                    reason="TenantUpdated",
                    message=f"updated {', '.join(sorted(changes))}",  # field names only: never the secret
                )
    except (InvalidInput, ValidationError) as exc:
        await _report(rt, body, ReadyState(False, "InvalidSpec", str(exc)[:1000]), {})
        raise
    if waiting_for is not None:
        state = ReadyState(False, "WebhookSecretMissing", waiting_for)
    elif tenant.suspended:
        state = ReadyState(False, "Suspended", f"tenant {name} is suspended: its keys are refused")
    else:
        state = ReadyState(
            True, "Reconciled", f"tenant {name}: tier {tenant.tier}, {tenant.hourly_limit} requests/hour"
        )
    async with rt.lock(body["metadata"]["uid"]):  # the sync timer applies spec.owners too
        owners = await reconcile_owners(rt, body, _caller(tenant, name))
        await _report(rt, body, state, await _counters(rt, tenant), owners)
    await kick_apikeys(rt, name, only_unready=not kick_all)
    if waiting_for is not None:
        raise kopf.TemporaryError(waiting_for, delay=rt.config.retry_delay)


async def suspend_tenant(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Finalizer: the VibeXPTenant goes, the account's data stays; its keys stop working."""
    name = body["metadata"]["name"]
    async with rt.unit_of_work() as session:
        try:
            tenant = await accounts.account_named(session, name=name)
        except NotFound:
            return
        if not tenant.suspended:
            await account.update_account(session, caller=_caller(tenant, name), data=TenantUpdate(suspended=True))
    post_event(body, warning=False, reason="TenantSuspended", message=f"VibeXPTenant deleted: tenant {name} suspended")
    await kick_apikeys(rt, name, only_unready=False)
    rt.forget(body["metadata"]["uid"])


async def sync_tenant(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Periodic: active keys and requests this hour, patched only when they changed; the webhook secret followed
    when its Secret changed (a rotated secret needs no edit of the VibeXPTenant); and spec.owners applied again (a
    Pending e-mail's user may exist now, a kept last owner may have a successor)."""
    name = body["metadata"]["name"]
    if body["metadata"].get("deletionTimestamp"):
        return
    alerts = await _alerts_to_follow(rt, body.get("spec") or {})
    async with rt.unit_of_work() as session:
        try:
            tenant = await accounts.account_named(session, name=name)
        except NotFound:
            return
        changes = {field: value for field, value in (alerts or {}).items() if getattr(tenant, field) != value}
        if changes:
            tenant = await account.update_account(
                session, caller=_caller(tenant, name), data=TenantUpdate.model_validate(changes)
            )
            post_event(body, warning=False, reason="TenantUpdated", message=f"updated {', '.join(sorted(changes))}")
    async with rt.lock(body["metadata"]["uid"]):
        owners = await reconcile_owners(rt, body, _caller(tenant, name))
        await _patch_status(rt, body, {**await _counters(rt, tenant), **_owners_status(body, owners)})


async def _alerts_to_follow(rt: OperatorRuntime, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """``spec.alerts`` as tenant fields for the periodic sync; a missing or refused Secret is the reconcile's to
    report (its condition says so), so the sync leaves the settings alone then."""
    if not (spec.get("alerts") or {}).get("webhookSecretRef"):
        return None  # nothing outside the spec can have changed: the change handler applied it
    try:
        return await alert_settings(rt, spec)
    except (WebhookSecretMissing, SecretRefRefused):
        return None


async def kick_apikeys(rt: OperatorRuntime, tenant: str, *, only_unready: bool) -> None:
    """Reconcile the served ApiKeys that name this tenant (a tenant change can make them ready, or not)."""
    namespaces: list[str | None] = [None] if rt.namespaces is None else list(rt.namespaces)
    for namespace in namespaces:
        for item in await rt.kube.list_apikeys(namespace):
            if (item.get("spec") or {}).get("tenant") != tenant or item["metadata"].get("deletionTimestamp"):
                continue
            ready = ready_of(item.get("status"))
            if only_unready and ready is not None and ready.get("status") == "True":
                continue
            await reconcile_apikey(rt, item)


async def report_tenant_outage(rt: OperatorRuntime, body: Mapping[str, Any], cause: str) -> None:
    """The database is unreachable: the tenant's Ready condition says so until it answers again."""
    state = ReadyState(
        None, "DatabaseUnavailable", f"the VibeXP database is unreachable ({cause}); retrying with backoff"
    )
    await _report(rt, body, state, {})
