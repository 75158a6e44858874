"""The ApiKey entry points the handlers call: reconcile (observe, plan, execute, report, under the object's lock),
the finalizer, the periodic sync and the outage report. See the package docstring for the three sources of truth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vibexp.core.clock import utcnow
from vibexp.core.errors import InvalidInput
from vibexp.operator.apikeys.execute import Executor, operator_actor, revoke_all
from vibexp.operator.apikeys.observe import current_key, latest_key, secret_view, tenant_view
from vibexp.operator.apikeys.status import (
    INVALID_SECRET,
    KEY_REFUSED,
    NEEDS_SPEC_CHANGE,
    event,
    patch_ready,
    report,
    report_invalid,
)
from vibexp.operator.kube import KubeApiError
from vibexp.operator.models import ApiKeySpec, SpecError
from vibexp.operator.plan import Phase, Revoke, plan
from vibexp.operator.runtime import OperatorRuntime
from vibexp.operator.secrets import is_owned_by
from vibexp.operator.status import ReadyState, ready_of

__all__ = ["delete_apikey", "reconcile_apikey", "report_apikey_outage", "sync_apikey"]


async def _run(rt: OperatorRuntime, body: Mapping[str, Any], spec: ApiKeySpec) -> None:
    # Kubernetes reads first, so the database transaction (and SQLite's one writer) is not held across them.
    secret = await rt.kube.read_secret(spec.namespace, spec.secret_name)
    tenant_cr = await rt.kube.read_tenant(spec.tenant)
    try:
        async with rt.unit_of_work() as session:
            slot, record = await latest_key(session, spec.uid, spec.rotation_count)
            tenant = await tenant_view(session, spec.tenant, tenant_cr)
            view = secret_view(spec, secret, record, slot)
            decision = plan(spec, current_key(record, slot), tenant, view, utcnow())
            outcome = await Executor(rt, body, spec, session).apply(decision, slot, record, secret)
    except InvalidInput as exc:
        # Nothing was committed. Said on the object (not a Kopf retry loop); the next change or sync tries again.
        state = ReadyState(False, KEY_REFUSED, f"VibeXP refused the key: {exc}")
        phase = (body.get("status") or {}).get("phase") or Phase.pending.value
        await patch_ready(rt, body, spec, state, {"observedGeneration": spec.generation, "phase": phase})
        return
    except KubeApiError as exc:
        if not exc.refused:
            raise
        # The apiserver refused the Secret built from this spec (nothing was committed): say so, do not retry.
        state = ReadyState(False, INVALID_SECRET, f"the apiserver refused Secret {spec.secret_name}: {exc.message}")
        phase = (body.get("status") or {}).get("phase") or Phase.pending.value
        await patch_ready(rt, body, spec, state, {"observedGeneration": spec.generation, "phase": phase})
        return
    if isinstance(decision, Revoke):
        await _delete_own_secret(rt, spec)
    await report(rt, body, spec, outcome)


async def _delete_own_secret(rt: OperatorRuntime, spec: ApiKeySpec) -> None:
    secret = await rt.kube.read_secret(spec.namespace, spec.secret_name)
    if secret is not None and secret.metadata is not None and is_owned_by(secret, spec.uid):
        await rt.kube.delete_secret(spec.namespace, spec.secret_name, uid=str(secret.metadata.uid))


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
            await report_invalid(rt, current, str(exc))
            return
        await _run(rt, current, spec)


async def delete_apikey(rt: OperatorRuntime, body: Mapping[str, Any]) -> None:
    """Finalizer: revoke every key of this ApiKey, then delete its Secret. Raises while the database is down."""
    spec = ApiKeySpec.from_body({**body, "spec": {**(body.get("spec") or {}), "expiresAt": None}})
    async with rt.lock(spec.uid):
        async with rt.unit_of_work() as session:
            n, current = await latest_key(session, spec.uid, spec.rotation_count)
            upto = n if current is not None else n - 1
            revoked = await revoke_all(session, spec.uid, upto, actor=operator_actor(spec))
        await _delete_own_secret(rt, spec)
    if revoked:
        prefixes = ", ".join(f"{k.prefix}..." for k in revoked)
        event(body, True, "Revoked", f"ApiKey deleted: revoked {prefixes} and deleted Secret {spec.secret_name}")
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
    await patch_ready(rt, body, spec, state, {})
