"""Status bookkeeping: the ``Ready`` condition and no-op-free status patches.

A condition's ``lastTransitionTime`` moves only when its status flips; a patch is sent only when a field the
operator owns actually differs from what the object already shows. Both keep the periodic sync from producing
watch events (and Kopf reactions) for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vibexp.core.clock import utcnow

__all__ = [
    "ReadyState",
    "condition",
    "condition_of",
    "iso",
    "ready_condition",
    "ready_of",
    "status_patch",
    "with_conditions",
]


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z and whole seconds, as Kubernetes writes its own timestamps."""
    return None if value is None else _utc(value)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ReadyState:
    #: None: unknown (the operator cannot tell now, e.g. the database is unreachable).
    ready: bool | None
    reason: str
    message: str

    @property
    def status(self) -> str:
        return "Unknown" if self.ready is None else str(self.ready)


def condition_of(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    for item in (status or {}).get("conditions") or []:
        if item.get("type") == type_:
            found: Mapping[str, Any] = item
            return found
    return None


def ready_of(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return condition_of(status, "Ready")


def ready_condition(state: ReadyState, *, generation: int, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    return condition("Ready", state, generation=generation, previous=previous)


def condition(type_: str, state: ReadyState, *, generation: int, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """A condition of this type; its ``lastTransitionTime`` stays the previous one's unless the status flips."""
    value = state.status
    since = _utc(utcnow())
    if previous is not None and previous.get("status") == value:
        since = str(previous.get("lastTransitionTime") or since)
    return {
        "type": type_,
        "status": value,
        "reason": state.reason,
        "message": state.message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch for the fields of ``desired`` that differ from ``current``.

    None removes a field; a nested object is compared without its None values, and keys it no longer has are
    removed explicitly (a merge patch would otherwise keep them).
    """
    current = current or {}
    patch: dict[str, Any] = {}
    for name, value in desired.items():
        have = current.get(name)
        if value is None:
            if have is not None:
                patch[name] = None
        elif isinstance(value, Mapping):
            want = {k: v for k, v in value.items() if v is not None}
            have_map = have if isinstance(have, Mapping) else {}
            if dict(have_map) != want:
                patch[name] = {**{k: None for k in have_map if k not in want}, **want}
        elif have != value:
            patch[name] = value
    return patch


def with_conditions(
    status: Mapping[str, Any] | None, replaced: Mapping[str, Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The object's conditions with those of ``replaced``'s types set (None: removed), the others kept as they are:
    a merge patch replaces the whole list, so a patch of one condition must carry the rest."""
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    for item in (status or {}).get("conditions") or []:
        type_ = str(item.get("type"))
        if type_ in replaced:
            done.add(type_)
            if (new := replaced[type_]) is not None:
                out.append(dict(new))
        else:
            out.append(dict(item))
    out.extend(dict(new) for type_, new in replaced.items() if type_ not in done and new is not None)
    return out
