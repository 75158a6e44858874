"""The MCP tools: prompts, artifacts and memories of the caller's account, through the core content services.

Each tool is a module-level function, as in the SDK's examples: it takes the ``Runtime`` from the server's lifespan
context (``ctx.request_context.lifespan_context``), opens one unit of work (``session_scope``: commit on success,
roll back on error; a write takes the SQLite writer turn) on its session factory and calls the same core use cases
the REST endpoints call (``vibexp.core.content.usecases``), as the ``Caller`` of the key that authenticated the HTTP
request: its tenant, its scopes. A tool's scope is the scope of the use case it ``uses``.
Arguments are validated against the same constraints as the REST schemas, and those limits are part of each tool's
JSON input schema.
"""

# No `from __future__ import annotations`: the SDK reads the tool functions' annotations at registration time
# (typing.get_type_hints), so they must be real objects, not strings.

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.api.mcp.context import caller_of, runtime_of
from vibexp.api.mcp.errors import tool_errors
from vibexp.api.mcp.schemas import (
    ArtifactPage,
    ArtifactSummary,
    Deleted,
    MemoryPage,
    PromptDetail,
    PromptPage,
    PromptSummary,
    artifact_uri,
)
from vibexp.api.mcp.templates import placeholders, render
from vibexp.core.access import Caller, Scope, required_scope
from vibexp.core.content import schemas
from vibexp.core.content.queries import ListQuery, ProjectListQuery
from vibexp.core.content.schemas import (
    MAX_ARTIFACT,
    MAX_TEXT,
    ContentType,
    Description,
    PathSegment,
    PromptName,
    Tags,
)
from vibexp.core.content.search import MAX_QUERY_CHARS
from vibexp.core.content.usecases import artifacts, memories, prompts
from vibexp.core.content.version_schemas import LabelName, VersionNumber
from vibexp.core.db import session_scope
from vibexp.core.pagination import MAX_PAGE_SIZE, PageCursor, PageSize
from vibexp.core.runtime import Runtime

__all__ = ["TOOL_NAMES", "TOOL_SCOPES", "register_tools"]

# -- argument types (their constraints become the input schema) -----------------------------------------------
Limit = Annotated[PageSize, Field(description=f"Page size, 1 to {MAX_PAGE_SIZE}")]
Cursor = Annotated[PageCursor | None, Field(description="next_cursor from the previous page; omit for the first page")]
_SEARCH = (
    "Words to search for: items containing every word in any word form (run/running), best first with a score; "
    "punctuation and operators (OR, NEAR, -, *) only separate words"
)
Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description=_SEARCH)]
OptionalQuery = Annotated[str | None, Field(min_length=1, max_length=MAX_QUERY_CHARS, description=_SEARCH)]
TagFilter = Annotated[str | None, Field(min_length=1, max_length=64, description="Only items with this tag")]
ExpectedVersion = Annotated[
    int | None,
    Field(ge=1, description="The version you last read; the update fails if the item changed since (optional)"),
]
PromptContent = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT, description="Prompt text; {{variable}} marks an argument")
]
PromptArguments = Annotated[
    dict[str, Annotated[str, Field(max_length=MAX_TEXT)]] | None,
    Field(max_length=64, description="Values for the prompt's {{variable}} placeholders; returns `rendered`"),
]
PromptLabel = Annotated[
    LabelName | None,
    Field(description="Read the version this label points at, e.g. production (not with `version`)"),
]
PromptVersionNumber = Annotated[
    VersionNumber | None,
    Field(description="Read this version of the prompt (not with `label`); omit for the latest"),
]
ArtifactContent = Annotated[str, Field(max_length=MAX_ARTIFACT, description="The artifact's full content")]
Title = Annotated[str, Field(min_length=1, max_length=300, description="Human-readable title")]
MemoryId = Annotated[str, Field(min_length=1, max_length=64, description="The memory's id")]
MemoryContent = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, description="The fact or note to remember")]
MemoryProject = Annotated[
    PathSegment | None, Field(description="The project the memory belongs to (as artifact projects); optional")
]
ProjectFilter = Annotated[PathSegment | None, Field(description="Only memories of this project")]

# -- annotations ----------------------------------------------------------------------------------------------
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
CREATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
OVERWRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
DELETE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

McpContext = Context[Any, Any]


_Tool = Callable[..., Awaitable[Any]]
#: Every tool and its registration options, in catalogue order (``register_tools`` adds them to a server).
_TOOLS: list[tuple[_Tool, dict[str, Any]]] = []
#: The scope each tool needs, read from the use case it calls (``vibexp.core.access.required_scope``): ``tools/list``
#: shows a key only the tools its scopes allow (``VibeXPMCPServer``); the use case checks the same scope when called.
TOOL_SCOPES: dict[str, Scope] = {}


def _tool(
    *, name: str, uses: Callable[..., Any], title: str, description: str, annotations: ToolAnnotations
) -> Callable[[_Tool], _Tool]:
    """Record a module-level tool function with its catalogue entry (what ``MCPServer.tool()`` would register)
    and the use case it calls, whose scope is the tool's (a read-only-hinted tool calls a reading use case:
    annotations stay truthful)."""
    scope = required_scope(uses)
    if annotations.read_only_hint != scope.is_read:
        raise ValueError(f"tool {name!r}: read_only_hint disagrees with its scope {scope!r}")
    if name in TOOL_SCOPES:
        raise ValueError(f"tool {name!r} is registered twice")

    def record(fn: _Tool) -> _Tool:
        _TOOLS.append((fn, {"name": name, "title": title, "description": description, "annotations": annotations}))
        TOOL_SCOPES[name] = scope
        return fn

    return record


def register_tools(server: MCPServer[Runtime]) -> None:
    """Add every tool (``TOOL_NAMES``) to ``server``; each one runs on the runtime its lifespan yields."""
    for fn, options in _TOOLS:
        server.add_tool(fn, **options)


@asynccontextmanager
async def _unit(ctx: McpContext, *, write: bool = False) -> AsyncIterator[tuple[AsyncSession, Caller]]:
    """One unit of work for the calling key, on the server's runtime (``write``: a change, which takes the SQLite
    writer turn as a REST write does); domain errors leave as readable tool errors."""
    with tool_errors():
        caller = caller_of(ctx.request_context)
        async with session_scope(runtime_of(ctx.request_context).session_factory, write=write) as session:
            yield session, caller


# -- prompts --------------------------------------------------------------------------------------------------
@_tool(
    name="list_prompts",
    uses=prompts.list,
    title="List prompts",
    description=(
        "List the saved prompts of this VibeXP account (name, description, tags; not the content). "
        "Filter by `query` (ranked search of name, description and content) or `tag`. Results are paginated: pass "
        "`next_cursor` back as `cursor` for more. Use get_prompt with a name to read one."
    ),
    annotations=READ,
)
async def list_prompts(
    ctx: McpContext,
    query: OptionalQuery = None,
    tag: TagFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PromptPage:
    async with _unit(ctx) as (session, caller):
        page = await prompts.list(session, caller=caller, query=ListQuery(q=query, tag=tag, limit=limit, cursor=cursor))
        return PromptPage(items=[PromptSummary.model_validate(p) for p in page.items], next_cursor=page.next_cursor)


@_tool(
    name="get_prompt",
    uses=prompts.find,
    title="Get a prompt",
    description=(
        "Read one saved prompt by its name, with its content and the list of {{variable}} arguments it takes. "
        "Pass `arguments` (an object of variable -> value) to also get `rendered`, the content with the "
        "values filled in; every variable is then required. By default the latest version; pass `label` "
        "(e.g. production) or `version` (a number) to read an earlier one."
    ),
    annotations=READ,
)
async def get_prompt(
    ctx: McpContext,
    name: PromptName,
    arguments: PromptArguments = None,
    label: PromptLabel = None,
    version: PromptVersionNumber = None,
) -> PromptDetail:
    with tool_errors():
        # perf (#13): the hottest tool; ``find`` reads the latest without a session (vibexp.core.hotread).
        prompt = await prompts.find(
            runtime_of(ctx.request_context).database,
            caller=caller_of(ctx.request_context),
            where=prompts.by_name(name),
            label=label,
            version=version,
        )
        rendered = render(prompt["content"], arguments) if arguments is not None else None
        return PromptDetail.model_validate(
            {**prompt, "arguments": placeholders(prompt["content"]), "rendered": rendered}
        )


@_tool(
    name="create_prompt",
    uses=prompts.add,
    title="Create a prompt",
    description=(
        "Save a new reusable prompt under a unique `name` (letters, digits, '_', '.', '-'). Write {{variable}} "
        "in the content for parts to fill in later. Fails with already_exists if the name is taken; use "
        "update_prompt to change an existing prompt."
    ),
    annotations=CREATE,
)
async def create_prompt(
    ctx: McpContext,
    name: PromptName,
    content: PromptContent,
    description: Description = "",
    tags: Tags = [],  # noqa: B006 - pydantic copies defaults; the list is never mutated
) -> schemas.PromptRead:
    with tool_errors():
        data = schemas.PromptCreate(name=name, content=content, description=description, tags=tags)
        prompt = await prompts.add(
            runtime_of(ctx.request_context).database, caller=caller_of(ctx.request_context), data=data
        )
        return schemas.PromptRead.model_validate(prompt)


@_tool(
    name="update_prompt",
    uses=prompts.update,
    title="Update a prompt",
    description=(
        "Change a saved prompt, found by its current `name`. Only the fields you pass change; pass `new_name` "
        "to rename it. Pass `expected_version` (from get_prompt) to fail instead of overwriting a newer edit."
    ),
    annotations=OVERWRITE,
)
async def update_prompt(
    ctx: McpContext,
    name: PromptName,
    new_name: PromptName | None = None,
    content: PromptContent | None = None,
    description: Description | None = None,
    tags: Tags | None = None,
    expected_version: ExpectedVersion = None,
) -> schemas.PromptRead:
    async with _unit(ctx, write=True) as (session, caller):
        data = schemas.PromptUpdate(**_given(name=new_name, content=content, description=description, tags=tags))
        prompt = await prompts.update(
            session, caller=caller, where=prompts.by_name(name), data=data, expected_version=expected_version
        )
        return schemas.PromptRead.model_validate(prompt)


@_tool(
    name="delete_prompt",
    uses=prompts.delete,
    title="Delete a prompt",
    description="Delete a saved prompt by name. This cannot be undone.",
    annotations=DELETE,
)
async def delete_prompt(ctx: McpContext, name: PromptName) -> Deleted:
    async with _unit(ctx, write=True) as (session, caller):
        await prompts.delete(session, caller=caller, where=prompts.by_name(name))
        return Deleted(what=f"prompt {name!r}")


# -- artifacts ------------------------------------------------------------------------------------------------
@_tool(
    name="list_artifacts",
    uses=artifacts.list,
    title="List artifacts",
    description=(
        "List saved artifacts (documents, code, notes kept per project), without their content. Filter by "
        "`project`, `query` (ranked search of title, description, slug and content) or `tag`. Paginated: pass "
        "`next_cursor` back as `cursor`. Read one with get_artifact or the resource artifact://{project}/{slug}."
    ),
    annotations=READ,
)
async def list_artifacts(
    ctx: McpContext,
    project: PathSegment | None = None,
    query: OptionalQuery = None,
    tag: TagFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ArtifactPage:
    async with _unit(ctx) as (session, caller):
        listed = ProjectListQuery(q=query, tag=tag, project=project, limit=limit, cursor=cursor)
        page = await artifacts.list(session, caller=caller, query=listed)
        items = [
            ArtifactSummary.model_validate(
                {**_summary_fields(a), "uri": artifact_uri(a.project, a.slug)},
            )
            for a in page.items
        ]
        return ArtifactPage(items=items, next_cursor=page.next_cursor)


@_tool(
    name="get_artifact",
    uses=artifacts.get,
    title="Get an artifact",
    description="Read one artifact, with its full content and MIME type, by `project` and `slug`.",
    annotations=READ,
)
async def get_artifact(ctx: McpContext, project: PathSegment, slug: PathSegment) -> schemas.ArtifactRead:
    async with _unit(ctx) as (session, caller):
        artifact = await artifacts.get(session, caller=caller, where=artifacts.at(project, slug))
        return schemas.ArtifactRead.model_validate(artifact)


@_tool(
    name="save_artifact",
    uses=artifacts.save,
    title="Save an artifact",
    description=(
        "Create or replace the artifact at `project`/`slug` (lowercase letters, digits, '.', '_', '-'). "
        "A new artifact gets `title` (default: the slug); for an existing one only the fields you pass "
        "change, and `content` replaces the old content. Pass `expected_version` to refuse overwriting a "
        "newer edit."
    ),
    annotations=OVERWRITE,
)
async def save_artifact(
    ctx: McpContext,
    project: PathSegment,
    slug: PathSegment,
    content: ArtifactContent,
    title: Title | None = None,
    content_type: ContentType | None = None,
    description: Description | None = None,
    tags: Tags | None = None,
    expected_version: ExpectedVersion = None,
) -> schemas.ArtifactRead:
    async with _unit(ctx, write=True) as (session, caller):
        artifact = await artifacts.save(
            session,
            caller=caller,
            project=project,
            slug=slug,
            content=content,
            title=title,
            content_type=content_type,
            description=description,
            tags=tags,
            expected_version=expected_version,
        )
        return schemas.ArtifactRead.model_validate(artifact)


@_tool(
    name="delete_artifact",
    uses=artifacts.delete,
    title="Delete an artifact",
    description="Delete the artifact at `project`/`slug`. This cannot be undone.",
    annotations=DELETE,
)
async def delete_artifact(ctx: McpContext, project: PathSegment, slug: PathSegment) -> Deleted:
    async with _unit(ctx, write=True) as (session, caller):
        where = artifacts.at(project, slug)
        await artifacts.delete(session, caller=caller, where=where)
        return Deleted(what=f"artifact {project}/{slug}")


# -- memories -------------------------------------------------------------------------------------------------
@_tool(
    name="list_memories",
    uses=memories.list,
    title="List memories",
    description=(
        "List remembered facts and notes, oldest first, optionally only those with `tag` or of `project`. "
        "Paginated: pass "
        "`next_cursor` back as `cursor`. To find memories about something, use search_memories."
    ),
    annotations=READ,
)
async def list_memories(
    ctx: McpContext, tag: TagFilter = None, project: ProjectFilter = None, limit: Limit = 50, cursor: Cursor = None
) -> MemoryPage:
    async with _unit(ctx) as (session, caller):
        listed = ProjectListQuery(tag=tag, project=project, limit=limit, cursor=cursor)
        page = await memories.list(session, caller=caller, query=listed)
        return MemoryPage(
            items=[schemas.MemoryRead.model_validate(m) for m in page.items], next_cursor=page.next_cursor
        )


@_tool(
    name="search_memories",
    uses=memories.list,
    title="Search memories",
    description=(
        "Find remembered facts and notes containing every word of `query` (any word form), best match first, "
        "each with a `score`; optionally only those with `tag` or of `project`. Use this before answering "
        "questions about the user's preferences or past work."
    ),
    annotations=READ,
)
async def search_memories(
    ctx: McpContext,
    query: Query,
    tag: TagFilter = None,
    project: ProjectFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MemoryPage:
    async with _unit(ctx) as (session, caller):
        listed = ProjectListQuery(q=query, tag=tag, project=project, limit=limit, cursor=cursor)
        page = await memories.list(session, caller=caller, query=listed)
        return MemoryPage(
            items=[schemas.MemoryRead.model_validate(m) for m in page.items], next_cursor=page.next_cursor
        )


@_tool(
    name="save_memory",
    uses=memories.add,
    title="Save a memory",
    description=(
        "Remember a fact, preference or note for later sessions (a new memory each call). Add `tags` to "
        "group related memories and `project` to file it under a project. Returns the memory with its id."
    ),
    annotations=CREATE,
)
async def save_memory(
    ctx: McpContext,
    content: MemoryContent,
    tags: Tags = [],  # noqa: B006 - pydantic copies defaults; the list is never mutated
    project: MemoryProject = None,
) -> schemas.MemoryRead:
    with tool_errors():  # the write agents make most: ``add`` takes the session-less single-row INSERT
        data = schemas.MemoryCreate(content=content, tags=tags, project=project)
        memory = await memories.add(
            runtime_of(ctx.request_context).database, caller=caller_of(ctx.request_context), data=data
        )
        return schemas.MemoryRead.model_validate(memory)


@_tool(
    name="get_memory",
    uses=memories.get,
    title="Get a memory",
    description="Read one memory (content, tags, version) by the id that save_memory or a list/search returned.",
    annotations=READ,
)
async def get_memory(ctx: McpContext, id: MemoryId) -> schemas.MemoryRead:
    async with _unit(ctx) as (session, caller):
        memory = await memories.get(session, caller=caller, where=memories.by_id(id))
        return schemas.MemoryRead.model_validate(memory)


@_tool(
    name="update_memory",
    uses=memories.update,
    title="Update a memory",
    description=(
        "Change a memory's `content`, `tags` and/or `project` by id; fields you leave out stay as they are. Pass "
        "`expected_version` to refuse overwriting a newer edit."
    ),
    annotations=OVERWRITE,
)
async def update_memory(
    ctx: McpContext,
    id: MemoryId,
    content: MemoryContent | None = None,
    tags: Tags | None = None,
    project: MemoryProject = None,
    expected_version: ExpectedVersion = None,
) -> schemas.MemoryRead:
    async with _unit(ctx, write=True) as (session, caller):
        data = schemas.MemoryUpdate(**_given(content=content, tags=tags, project=project))
        memory = await memories.update(
            session, caller=caller, where=memories.by_id(id), data=data, expected_version=expected_version
        )
        return schemas.MemoryRead.model_validate(memory)


@_tool(
    name="delete_memory",
    uses=memories.delete,
    title="Delete a memory",
    description="Forget a memory by id. This cannot be undone.",
    annotations=DELETE,
)
async def delete_memory(ctx: McpContext, id: MemoryId) -> Deleted:
    async with _unit(ctx, write=True) as (session, caller):
        await memories.delete(session, caller=caller, where=memories.by_id(id))
        return Deleted(what=f"memory {id}")


def _given(**fields: Any) -> dict[str, Any]:
    """The fields a caller passed (the tools' optional arguments default to None: not given, no change)."""
    return {name: value for name, value in fields.items() if value is not None}


def _summary_fields(artifact: Any) -> dict[str, Any]:
    return {field: getattr(artifact, field) for field in ArtifactSummary.model_fields if field != "uri"}


#: Every tool's name in catalogue order (what ``tools/list`` shows a full-access key), read off the registry above.
TOOL_NAMES: tuple[str, ...] = tuple(options["name"] for _, options in _TOOLS)
