"""What an ApiKey shows after a reconcile: its status (only the fields that differ are patched), the ``Ready``
condition's reasons, and the Kubernetes events (each also a line in the operator's log, never a key)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vibexp.core.keys.models import ApiKey
from vibexp.operator.events import post_event
from vibexp.operator.models import ApiKeySpec
from vibexp.operator.plan import Phase
from vibexp.operator.runtime import OperatorRuntime
from vibexp.operator.status import ReadyState, iso, ready_condition, ready_of, status_patch

__all__ = [
    "INVALID_SECRET",
    "INVALID_SPEC",
    "KEY_READY",
    "KEY_REFUSED",
    "NEEDS_SPEC_CHANGE",
    "Outcome",
    "apikey_status",
    "event",
    "patch_ready",
    "ready",
    "report",
    "report_invalid",
]

#: The package's logger (its name unchanged since the package was one module).
log = logging.getLogger("vibexp.operator.apikeys")

KEY_READY = "KeyReady"
INVALID_SPEC = "InvalidSpec"
INVALID_SECRET = "InvalidSecret"  # noqa: S105 - a condition reason
#: VibeXP refused the key the spec asks for (say, spec.expiresAt beyond the tenant's keyPolicy.maxLifetimeDays).
#: Not a "needs a spec change" reason: a change of the tenant's policy can clear it too, so the sync retries it.
KEY_REFUSED = "KeyRefused"
#: Ready reasons only a spec change can clear: the sync does not retry them at the same generation.
NEEDS_SPEC_CHANGE = frozenset({INVALID_SPEC, INVALID_SECRET})


def event(body: Mapping[str, Any], ok: bool | None, reason: str, message: str) -> None:
    """A Kubernetes event on the ApiKey, and the same line in the operator's log (prefixes only, never a key)."""
    meta = body["metadata"]
    level = logging.INFO if ok else logging.WARNING
    log.log(level, "ApiKey %s/%s: %s: %s", meta.get("namespace"), meta.get("name"), reason, message)
    post_event(body, warning=not ok, reason=reason, message=message)


@dataclass
class Outcome:
    """What one reconcile did: the Ready state, the phase, the key shown in status, the events already posted."""

    state: ReadyState
    phase: Phase
    key: ApiKey | None = None
    rotation: int = 0
    tenant_id: str | None = None
    events: list[str] = field(default_factory=list)


def ready(spec: ApiKeySpec) -> ReadyState:
    return ReadyState(True, KEY_READY, f"key delivered in Secret {spec.secret_name}")


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


async def report(rt: OperatorRuntime, body: Mapping[str, Any], spec: ApiKeySpec, outcome: Outcome) -> None:
    status = body.get("status") or {}
    await patch_ready(rt, body, spec, outcome.state, apikey_status(spec, status, outcome), posted=outcome.events)


async def patch_ready(
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
        event(body, state.ready, state.reason, state.message)


async def report_invalid(rt: OperatorRuntime, body: Mapping[str, Any], message: str) -> None:
    """A spec that cannot be read: ``Ready=False``, ``InvalidSpec``, one event (not again at the same reason)."""
    meta = body["metadata"]
    generation = int(meta.get("generation") or 0)
    previous = ready_of(body.get("status"))
    condition = ready_condition(ReadyState(False, INVALID_SPEC, message), generation=generation, previous=previous)
    patch = status_patch(body.get("status"), {"observedGeneration": generation, "conditions": [condition]})
    if patch:
        await rt.kube.patch_apikey_status(meta["namespace"], meta["name"], patch)
    if previous is None or previous.get("reason") != INVALID_SPEC:
        event(body, False, INVALID_SPEC, message)
