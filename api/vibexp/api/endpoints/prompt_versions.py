"""Prompt versions and labels over REST, and ``GET /prompts/{id}`` (the latest, or a version by label or number).

``GET /prompts/{id}`` without parameters stays the session-less hot read (``content.hot_get``): no query is added
for it. Only ``?label=`` / ``?version=`` open a session. A served version's ETag is its version number, so an
``If-Match`` built from an old version is refused (412) as any stale write is; moving a label does not change the
prompt's version, so the ETag of the latest version stays valid across label moves.

Bad input: a label that is not a slug, ``version`` not an integer from 1 to 2^31 - 1 (``VersionNumber``), or both
``label`` and ``version`` are 422; an unknown label or version on a read is 404; a label ``PUT`` naming a version
the prompt does not have is 422 (the prompt exists; the body names nothing). A label ``PUT`` is idempotent:
concurrent ones all succeed, the last wins; a move is audited as ``prompt.label_moved``, a removal as
``prompt.label_removed``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from starlette.types import Receive, Scope

from vibexp.api.deps import CurrentCaller, RuntimeDep, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.endpoints.content import Cursor, Limit
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.http_cache import etag
from vibexp.api.request_state import request_state
from vibexp.api.route_shortcut import direct_endpoint
from vibexp.api.schemas import PageRead
from vibexp.core.content.schemas import PromptRead
from vibexp.core.content.usecases import prompts
from vibexp.core.content.version_schemas import (
    LabelSet,
    PromptAtVersion,
    PromptLabelRead,
    PromptVersionRead,
    VersionNumber,
)
from vibexp.core.content.versions import LABEL_PATTERN
from vibexp.core.pagination import DEFAULT_PAGE_SIZE
from vibexp.core.runtime import Runtime

__all__ = ["prompt_versions_router"]

prompt_versions_router = APIRouter(prefix=API_PREFIX + "/prompts", tags=["prompts"], responses=ERROR_RESPONSES)

LabelQuery = Annotated[
    str | None,
    Query(pattern=LABEL_PATTERN, max_length=63, description="Serve the version this label points at"),
]
VersionQuery = Annotated[VersionNumber | None, Query(description="Serve this version")]
LabelPath = Annotated[str, Path(pattern=LABEL_PATTERN, max_length=63, description="A slug, e.g. production")]
VersionPath = Annotated[VersionNumber, Path(description="A version number")]


def _json(model: Any, version: int) -> Response:
    return Response(model.model_dump_json().encode(), media_type="application/json", headers={"ETag": etag(version)})


@prompt_versions_router.get(
    "/{item_id}",
    response_model=PromptRead | PromptAtVersion,
    summary="Get a prompt (the latest, or a version by ?label= or ?version=)",
)
async def get_prompt(
    item_id: str,
    runtime: RuntimeDep,
    caller: CurrentCaller,
    label: LabelQuery = None,
    version: VersionQuery = None,
) -> Response:
    # The use case picks the hot read for the latest version; the answer's shape is this adapter's choice.
    row = await prompts.find(
        runtime.database, caller=caller, where=prompts.by_id(item_id), label=label, version=version
    )
    model = PromptRead if label is None and version is None else PromptAtVersion
    return _json(model.model_validate(row), row["version"])


async def _get_latest(scope: Scope, _receive: Receive, path_params: dict[str, Any]) -> Response | None:
    """``get_prompt`` without a query string, called by the route shortcut without FastAPI's dependency solver
    (``vibexp.api.route_shortcut.direct_endpoint``): the same use case, the same Caller, the same answer."""
    state = request_state(scope)
    if scope["method"] != "GET" or scope["query_string"] or state is None:
        return None  # ?label= / ?version= (validated by FastAPI), or a request the auth layer did not see
    runtime: Runtime = scope["app"].state.runtime
    row = await prompts.find(runtime.database, caller=state.caller(), where=prompts.by_id(path_params["item_id"]))
    return _json(PromptRead.model_validate(row), row["version"])


direct_endpoint(get_prompt, _get_latest)


@prompt_versions_router.get(
    "/{item_id}/versions", response_model=PageRead[PromptVersionRead], summary="List a prompt's versions, newest first"
)
async def list_prompt_versions(
    item_id: str,
    session: SessionDep,
    caller: CurrentCaller,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Any:
    page, labels = await prompts.list_versions(session, caller=caller, prompt_id=item_id, limit=limit, cursor=cursor)
    items = [
        PromptVersionRead.model_validate(entry).model_copy(update={"labels": labels.get(entry.version, [])})
        for entry in page.items
    ]
    return {"items": items, "next_cursor": page.next_cursor}


@prompt_versions_router.get(
    "/{item_id}/versions/{number}", response_model=PromptVersionRead, summary="Get one version of a prompt"
)
async def get_prompt_version(item_id: str, number: VersionPath, session: SessionDep, caller: CurrentCaller) -> Response:
    found = await prompts.get_version(session, caller=caller, prompt_id=item_id, number=number)
    read = PromptVersionRead.model_validate(found.entry).model_copy(update={"labels": found.labels})
    return _json(read, found.entry.version)


@prompt_versions_router.put(
    "/{item_id}/labels/{label}",
    response_model=PromptLabelRead,
    summary="Point a label at a version (creates or moves it; roll back by moving production)",
)
async def put_prompt_label(
    item_id: str,
    label: LabelPath,
    body: LabelSet,
    session: SessionDep,
    caller: CurrentCaller,
) -> Any:
    return await prompts.set_label(session, caller=caller, prompt_id=item_id, label=label, version=body.version)


@prompt_versions_router.delete(
    "/{item_id}/labels/{label}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a label"
)
async def delete_prompt_label(item_id: str, label: LabelPath, session: SessionDep, caller: CurrentCaller) -> Response:
    await prompts.delete_label(session, caller=caller, prompt_id=item_id, label=label)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
