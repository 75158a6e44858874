"""Settings → Audit log: the account's management actions, newest first, filterable by key and by action; each row
says what changed, read from the event's details (``describe_changes``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vibexp.api.dashboard.deps import CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import render
from vibexp.api.deps import SessionDep
from vibexp.core.audit import usecases as audit
from vibexp.core.keys import usecases as keys

__all__ = ["describe_changes", "router"]

router = APIRouter(route_class=DashboardRoute)

PAGE_SIZE = 50
#: At most this many lines of changes per row, each value at most VALUE_CHARS long.
MAX_LINES = 8
VALUE_CHARS = 80


def _value(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "none"
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = str(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def describe_changes(details: dict[str, Any] | None) -> list[str]:
    """What an event changed, as short lines: ``field: before → after`` where the details say both (a tenant's
    ``changes``, a key's ``previous`` permissions, a label's versions), else ``field: value``."""
    rest = dict(details or {})
    lines: list[str] = []
    changes = rest.pop("changes", None)
    if isinstance(changes, dict):
        for field, change in changes.items():
            if isinstance(change, dict) and {"from", "to"} & set(change):
                lines.append(f"{field}: {_value(change.get('from'))} → {_value(change.get('to'))}")
            else:
                lines.append(f"{field}: {_value(change)}")
    previous = rest.pop("previous", None)
    if isinstance(previous, dict):
        for field, before in previous.items():
            if field in rest:
                after = rest.pop(field)
                if before != after:
                    lines.append(f"{field}: {_value(before)} → {_value(after)}")
    if "from_version" in rest or "to_version" in rest:
        label = rest.pop("label", None) or "version"
        before, after = rest.pop("from_version", None), rest.pop("to_version", None)
        lines.append(f"{label}: {f'v{before}' if before else 'none'} → {f'v{after}' if after else 'removed'}")
    lines += [f"{field}: {_value(value)}" for field, value in sorted(rest.items()) if value not in (None, "", [])]
    return lines[:MAX_LINES]


@router.get("/settings/audit-log")
async def audit_log(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    key: str = "",
    action: str = "",
    cursor: str = "",
) -> Response:
    # An unknown action or a bad cursor is InvalidInput: the dashboard's route class answers it with a 422 page.
    page = await audit.list_events(
        db,
        caller=viewer.caller,
        action=action or None,
        key_id=key or None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    context = {
        "events": page.items,
        "next_cursor": page.next_cursor,
        "keys": await keys.list_keys(db, caller=viewer.caller, include_deleted=True),  # history stays
        "actions": sorted(audit.ACTIONS),
        "key": key,
        "action": action,
        "describe_changes": describe_changes,
    }
    return render(request, "audit.html", context)
