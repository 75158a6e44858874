"""Prompts, artifacts and memories over REST."""

# No `from __future__ import annotations`: the router factory's annotations must be real classes for FastAPI.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BaseModel
from starlette.types import Receive, Scope

from vibexp.api.deps import CurrentCaller, RuntimeDep, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.http_cache import etag, parse_if_match, set_etag
from vibexp.api.request_state import request_state
from vibexp.api.route_shortcut import DirectHandler, direct_endpoint, read_body
from vibexp.api.schemas import PageRead
from vibexp.core.access import Caller
from vibexp.core.content import schemas
from vibexp.core.content.queries import ListQuery, ProjectListQuery
from vibexp.core.content.usecases import ContentCases, Where, artifacts, memories, prompts
from vibexp.core.pagination import PageCursor, PageSize
from vibexp.core.runtime import Runtime

__all__ = ["artifacts_router", "hot_get", "id_keyed_router", "memories_router", "prompts_router"]

Limit = Annotated[PageSize, Query(description="Page size")]
Cursor = Annotated[PageCursor | None, Query(description="next_cursor of the previous page")]
IfMatch = Annotated[str | None, Header(description="ETag from a previous read; 412 if the object changed")]
ETAG_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: ERROR_RESPONSES[404] | {"description": "The unique name is taken"},
    412: ERROR_RESPONSES[404] | {"description": "If-Match does not match the current ETag"},
}


async def hot_get(
    cases: ContentCases[Any], read_model: type[BaseModel], runtime: Runtime, *, caller: Caller, where: Where[Any]
) -> Response:
    """The hottest read (``ContentCases.find`` picks the session-less one), validated and serialised once by
    pydantic-core (returning the row would have FastAPI validate it again against response_model)."""
    row = await cases.find(runtime.database, caller=caller, where=where)
    body = read_model.model_validate(row).model_dump_json().encode()
    return Response(body, media_type="application/json", headers={"ETag": etag(row["version"])})


def created_response(read_model: type[BaseModel], created: object) -> Response:
    """201 with the new object, validated and serialised once, and its ETag (a new object is version 1)."""
    body = read_model.model_validate(created)
    response = Response(
        body.__pydantic_serializer__.to_json(body), status_code=status.HTTP_201_CREATED, media_type="application/json"
    )
    # Appended as bytes: a ``headers=`` mapping would be normalised header by header (the write hot path's answer).
    version: int = body.version  # type: ignore[attr-defined]  # every read model has one
    response.raw_headers.append((b"etag", etag(version).encode("latin-1")))
    return response


def _direct_get(
    cases: ContentCases[Any], read_model: type[BaseModel], by_id: Callable[[str], Where[Any]]
) -> DirectHandler:
    """``get_item`` for the route shortcut's direct dispatch (``vibexp.api.route_shortcut.direct_endpoint``): the
    same use case and Caller without FastAPI's dependency solver; anything unusual is left to FastAPI."""

    async def get(scope: Scope, _receive: Receive, path_params: dict[str, Any]) -> Response | None:
        state = request_state(scope)
        if scope["method"] != "GET" or scope["query_string"] or state is None:
            return None
        runtime: Runtime = scope["app"].state.runtime
        return await hot_get(cases, read_model, runtime, caller=state.caller(), where=by_id(path_params["item_id"]))

    return get


def _direct_create(
    cases: ContentCases[Any], create_model: type[BaseModel], read_model: type[BaseModel]
) -> DirectHandler:
    """``create_item`` for the route shortcut's direct dispatch: a JSON body parsed and validated in one pass by
    pydantic-core (``model_validate_json``) and stored by the same use case. What it accepts, FastAPI's
    ``json.loads`` and then the model accept alike, to the same values (tests/api/test_memories.py); a body
    it refuses (not JSON, not valid, or JSON only ``json.loads`` reads: a BOM, UTF-16) is handed back to FastAPI,
    replayed, so FastAPI's answer (a 422, or the object) is the one answer to it."""

    async def create(scope: Scope, receive: Receive, _path_params: dict[str, Any]) -> Response | None:
        state = request_state(scope)
        if scope["method"] != "POST" or scope["query_string"] or state is None or not _json_content(scope):
            return None
        body = await read_body(receive)
        if not body:
            return None
        try:
            data = create_model.model_validate_json(body)
        except (ValueError, RecursionError):  # bad JSON, too deeply nested, or invalid (a ValidationError)
            return None
        runtime: Runtime = scope["app"].state.runtime
        return created_response(read_model, await cases.add(runtime.database, caller=state.caller(), data=data))

    return create


def _json_content(scope: Scope) -> bool:
    """``Content-Type: application/json`` (parameters allowed), the one type FastAPI reads a JSON body from."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json"
    return False


def id_keyed_router(
    cases: ContentCases[Any],
    *,
    by_id: Callable[[str], Where[Any]],
    path: str,
    tag: str,
    create_model: type[BaseModel],
    update_model: type[BaseModel],
    read_model: type[BaseModel],
    query_model: type[ListQuery] = ListQuery,
    with_get: bool = True,
) -> APIRouter:
    """CRUD for a resource addressed by ``{id}`` (prompts, memories), each endpoint one core use case.
    ``with_get=False`` leaves ``GET /{id}`` to another router (prompts: ``endpoints.prompt_versions`` adds
    ``?label=`` / ``?version=``). ``query_model`` is the list's query string (memories: ``ProjectListQuery``)."""
    # Long on purpose: five endpoints closing over one resource's use cases and body models (FastAPI reads the body
    # type from each endpoint's signature), so each resource kind gets the same routes from this one factory.
    router = APIRouter(prefix=API_PREFIX + path, tags=[tag], responses=ERROR_RESPONSES)
    noun = cases.store.noun

    @router.get("", response_model=PageRead[read_model], summary=f"List or search {tag}")  # type: ignore[valid-type]
    async def list_items(
        session: SessionDep,
        caller: CurrentCaller,
        query: Annotated[query_model, Query()],  # type: ignore[valid-type]
    ) -> Any:
        page = await cases.list(session, caller=caller, query=query)
        return {"items": page.items, "next_cursor": page.next_cursor}

    @router.post(
        "",
        response_model=read_model,
        status_code=status.HTTP_201_CREATED,
        responses=ETAG_RESPONSES,
        summary=f"Create a {noun}",
    )
    async def create_item(
        body: create_model,  # type: ignore[valid-type]
        runtime: RuntimeDep,
        caller: CurrentCaller,
    ) -> Response:
        # The write hot path (agents store memories all the time): ``add`` picks the session-less single-row INSERT
        # where the kind allows it; the body is validated and serialised once, as in get_item.
        return created_response(read_model, await cases.add(runtime.database, caller=caller, data=body))

    direct_endpoint(create_item, _direct_create(cases, create_model, read_model))

    if with_get:

        @router.get("/{item_id}", response_model=read_model, summary=f"Get a {noun}")
        async def get_item(item_id: str, runtime: RuntimeDep, caller: CurrentCaller) -> Response:
            return await hot_get(cases, read_model, runtime, caller=caller, where=by_id(item_id))

        direct_endpoint(get_item, _direct_get(cases, read_model, by_id))

    @router.put("/{item_id}", response_model=read_model, responses=ETAG_RESPONSES, summary=f"Update a {noun}")
    async def update_item(
        item_id: str,
        body: update_model,  # type: ignore[valid-type]
        session: SessionDep,
        caller: CurrentCaller,
        response: Response,
        if_match: IfMatch = None,
    ) -> Any:
        obj = await cases.update(
            session, caller=caller, where=by_id(item_id), data=body, expected_version=parse_if_match(if_match)
        )
        set_etag(response, obj.version)
        return obj

    @router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, summary=f"Delete a {noun}")
    async def delete_item(item_id: str, session: SessionDep, caller: CurrentCaller) -> Response:
        await cases.delete(session, caller=caller, where=by_id(item_id))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


prompts_router = id_keyed_router(
    prompts,
    by_id=prompts.by_id,
    path="/prompts",
    tag="prompts",
    create_model=schemas.PromptCreate,
    update_model=schemas.PromptUpdate,
    read_model=schemas.PromptRead,
    with_get=False,  # endpoints.prompt_versions: the same hot read, or a version by ?label= / ?version=
)
memories_router = id_keyed_router(
    memories,
    by_id=memories.by_id,
    path="/memories",
    tag="memories",
    create_model=schemas.MemoryCreate,
    update_model=schemas.MemoryUpdate,
    read_model=schemas.MemoryRead,
    query_model=ProjectListQuery,
)

artifacts_router = APIRouter(prefix=f"{API_PREFIX}/artifacts", tags=["artifacts"], responses=ERROR_RESPONSES)


@artifacts_router.get("", response_model=PageRead[schemas.ArtifactRead], summary="List or search artifacts")
async def list_artifacts(
    session: SessionDep, caller: CurrentCaller, query: Annotated[ProjectListQuery, Query()]
) -> Any:
    page = await artifacts.list(session, caller=caller, query=query)
    return {"items": page.items, "next_cursor": page.next_cursor}


@artifacts_router.post(
    "",
    response_model=schemas.ArtifactRead,
    status_code=status.HTTP_201_CREATED,
    responses=ETAG_RESPONSES,
    summary="Create an artifact",
)
async def create_artifact(body: schemas.ArtifactCreate, runtime: RuntimeDep, caller: CurrentCaller) -> Response:
    return created_response(schemas.ArtifactRead, await artifacts.add(runtime.database, caller=caller, data=body))


@artifacts_router.get("/{project}/{slug}", response_model=schemas.ArtifactRead, summary="Get an artifact")
async def get_artifact(project: str, slug: str, session: SessionDep, caller: CurrentCaller, response: Response) -> Any:
    obj = await artifacts.get(session, caller=caller, where=artifacts.at(project, slug))
    set_etag(response, obj.version)
    return obj


@artifacts_router.put(
    "/{project}/{slug}",
    response_model=schemas.ArtifactRead,
    responses=ETAG_RESPONSES,
    summary="Update an artifact",
)
async def update_artifact(
    project: str,
    slug: str,
    body: schemas.ArtifactUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    obj = await artifacts.update(
        session,
        caller=caller,
        where=artifacts.at(project, slug),
        data=body,
        expected_version=parse_if_match(if_match),
    )
    set_etag(response, obj.version)
    return obj


@artifacts_router.delete("/{project}/{slug}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an artifact")
async def delete_artifact(project: str, slug: str, session: SessionDep, caller: CurrentCaller) -> Response:
    await artifacts.delete(session, caller=caller, where=artifacts.at(project, slug))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
