"""A prompt's version history in the dashboard: the list (on the prompt's page), one version with its diff against
the previous one, and "Promote to production" (moves the ``production`` label; a CSRF-checked POST like every
other form). Everything goes through ``vibexp.core.content.versions``, as the REST API and MCP do."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.deps import SessionDep
from vibexp.core.access import Caller
from vibexp.core.content import version_schemas, versions
from vibexp.core.content.usecases import prompts
from vibexp.core.errors import NotFound

__all__ = ["DiffLine", "history_context", "router", "unified_diff"]

router = APIRouter(route_class=DashboardRoute)
#: Versions shown on a prompt's page (the REST API pages through all of them).
HISTORY_SIZE = 50
VersionNumber = Annotated[version_schemas.VersionNumber, Path()]


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # add | remove | hunk | context | file
    text: str


def unified_diff(before: str, after: str, *, old: str, new: str) -> list[DiffLine]:
    """``after`` against ``before`` as unified-diff lines; the template escapes the text (autoescape)."""
    lines = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), fromfile=old, tofile=new, lineterm=""):
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "context"
        lines.append(DiffLine(kind, line))
    return lines


async def history_context(session: AsyncSession, *, caller: Caller, prompt_id: str) -> dict[str, Any]:
    """What the prompt's page shows of its history: the newest versions and the labels on each."""
    page, labels = await prompts.list_versions(session, caller=caller, prompt_id=prompt_id, limit=HISTORY_SIZE)
    return {"history": page.items, "history_labels": labels, "history_more": page.next_cursor is not None}


@router.get("/prompts/{prompt_id}/versions/{number}")
async def version_page(
    request: Request, prompt_id: str, number: VersionNumber, db: SessionDep, viewer: CurrentViewer
) -> Response:
    caller = viewer.caller
    found = await prompts.get_version(db, caller=caller, prompt_id=prompt_id, number=number)
    previous = None
    if number > 1:
        try:
            previous = (await prompts.get_version(db, caller=caller, prompt_id=prompt_id, number=number - 1)).entry
        except NotFound:  # a backfilled prompt starts at its version then (earlier content was never kept)
            previous = None
    diff: list[DiffLine] = []
    changed: list[tuple[str, str, str]] = []
    if previous is not None:
        diff = unified_diff(previous.content, found.entry.content, old=f"version {number - 1}", new=f"version {number}")
        for field in ("name", "description", "tags"):
            before, after = getattr(previous, field), getattr(found.entry, field)
            if before != after:
                show = (lambda v: ", ".join(v)) if field == "tags" else str
                changed.append((field, show(before), show(after)))
    context = {
        "prompt": found.prompt,
        "entry": found.entry,
        "labels": found.labels,
        "previous": previous,
        "diff": diff,
        "changed": changed,
        "notice": "Promoted to production." if request.query_params.get("promoted") else None,
    }
    return render(request, "content/prompt_version.html", context)


@router.post("/prompts/{prompt_id}/versions/{number}/promote", dependencies=[CsrfChecked])
async def promote(
    request: Request, prompt_id: str, number: VersionNumber, db: SessionDep, viewer: CurrentViewer
) -> Response:
    await prompts.set_label(
        db,
        caller=viewer.caller,
        prompt_id=prompt_id,
        label=versions.PRODUCTION,
        version=number,
    )
    return redirect(request, f"/prompts/{prompt_id}/versions/{number}?promoted=1")
