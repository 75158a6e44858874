"""The VibeXP MCP server: tools, stored prompts as MCP prompts, artifacts as MCP resources.

``MCPServer`` keeps prompts and resources in fixed in-process registries that it returns in one page. Ours are
per-tenant rows in the database, so ``prompts/list``, ``prompts/get``, ``resources/list``,
``resources/templates/list`` and ``resources/read`` are answered by the module-level handlers below (the SDK's
public low-level handler signature, registered with ``Server.add_request_handler``), with the core services'
cursors, for the tenant of the key that authenticated the HTTP request. Tools use the SDK's machinery unchanged
(``tools.py``). Both read the process's ``Runtime`` from the server's lifespan context.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    InputRequiredResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    Prompt,
    PromptArgument,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    RequestParams,
    Resource,
    ResourceTemplate,
    TextContent,
    TextResourceContents,
)
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.api.mcp.context import UsageTagger, principal_of, runtime_of
from vibexp.api.mcp.errors import describe_validation_error, protocol_errors
from vibexp.api.mcp.schemas import artifact_uri
from vibexp.api.mcp.templates import placeholders, render
from vibexp.api.mcp.tools import register_tools
from vibexp.core.content import versions
from vibexp.core.content.models import Artifact
from vibexp.core.content.models import Prompt as StoredPrompt
from vibexp.core.content.service import artifacts, prompts
from vibexp.core.db import session_scope
from vibexp.core.errors import NotFound
from vibexp.core.runtime import Runtime

__all__ = [
    "ARTIFACT_URI_TEMPLATE",
    "CATALOGUE_HANDLERS",
    "INSTRUCTIONS",
    "LIST_PAGE_SIZE",
    "VibeXPMCPServer",
    "create_mcp_server",
    "lowlevel_server",
]

ARTIFACT_URI_TEMPLATE = "artifact://{project}/{slug}"
#: Page size of prompts/list and resources/list (clients follow ``nextCursor`` for more).
LIST_PAGE_SIZE = 100
_ARTIFACT_URI = re.compile(r"^artifact://([a-z0-9][a-z0-9._-]{0,127})/([a-z0-9][a-z0-9._-]{0,127})$")

INSTRUCTIONS = """\
VibeXP keeps this user's prompts, artifacts and memories across tools and sessions.
- Prompts: reusable instructions. list_prompts / get_prompt (pass `arguments` to fill {{variables}}); also \
available as MCP prompts.
- Artifacts: documents and code kept per project at project/slug; save_artifact creates or replaces one. Also \
readable as resources artifact://{project}/{slug}.
- Memories: facts and preferences worth remembering. search_memories before answering questions about the \
user's preferences or past decisions; save_memory when the user states one.
Lists are paginated: pass next_cursor back as cursor."""


def _prompt_argument(name: str) -> PromptArgument:
    return PromptArgument(name=name, description=f"Value for {{{{{name}}}}}", required=True)


def _mcp_prompt(prompt: StoredPrompt, served: versions.PromptVersion | None = None) -> Prompt:
    """The MCP prompt under the prompt's current name, described as ``prompts/get`` serves it (``served``: the
    version labelled production, if any)."""
    shown: StoredPrompt | versions.PromptVersion = served or prompt
    return Prompt(
        name=prompt.name,
        description=shown.description or None,
        arguments=[_prompt_argument(name) for name in placeholders(shown.content)],
    )


def _resource(artifact: Artifact) -> Resource:
    return Resource(
        uri=artifact_uri(artifact.project, artifact.slug),
        name=f"{artifact.project}/{artifact.slug}",
        title=artifact.title,
        description=artifact.description or None,
        mime_type=artifact.content_type,
        size=len(artifact.content.encode()),
    )


# -- the catalogue's low-level handlers (the SDK's public handler signature, registered in VibeXPMCPServer) ------
@asynccontextmanager
async def _tenant_session(ctx: ServerRequestContext[Runtime]) -> AsyncIterator[tuple[AsyncSession, str]]:
    """One transaction for the calling tenant; domain errors leave as JSON-RPC errors."""
    with protocol_errors():
        tenant_id = principal_of(ctx).tenant_id
        async with session_scope(runtime_of(ctx).session_factory) as session:
            yield session, tenant_id


async def list_prompts(ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None) -> ListPromptsResult:
    async with _tenant_session(ctx) as (session, tenant_id):
        page = await prompts.list(
            session, tenant_id=tenant_id, limit=LIST_PAGE_SIZE, cursor=params.cursor if params else None
        )
        served = await versions.production_versions(session, prompt_ids=[p.id for p in page.items])
    items = [_mcp_prompt(p, served.get(p.id)) for p in page.items]
    return ListPromptsResult(prompts=items, next_cursor=page.next_cursor)


async def get_prompt(ctx: ServerRequestContext[Runtime], params: GetPromptRequestParams) -> GetPromptResult:
    """The version labelled ``production`` when there is one, else the latest (DESIGN.md)."""
    async with _tenant_session(ctx) as (session, tenant_id):
        try:
            prompt = await versions.serving_version(session, tenant_id=tenant_id, name=params.name)
        except NotFound:
            raise NotFound(f"Unknown prompt: {params.name!r}") from None
    with protocol_errors():
        text = render(prompt.content, params.arguments)
    return GetPromptResult(
        description=prompt.description or None,
        messages=[PromptMessage(role="user", content=TextContent(type="text", text=text))],
    )


async def list_resources(
    ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None
) -> ListResourcesResult:
    async with _tenant_session(ctx) as (session, tenant_id):
        page = await artifacts.list(
            session, tenant_id=tenant_id, limit=LIST_PAGE_SIZE, cursor=params.cursor if params else None
        )
    return ListResourcesResult(resources=[_resource(a) for a in page.items], next_cursor=page.next_cursor)


async def list_resource_templates(
    ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None
) -> ListResourceTemplatesResult:
    template = ResourceTemplate(
        uri_template=ARTIFACT_URI_TEMPLATE,
        name="artifact",
        title="Artifact",
        description="A saved artifact of this account, by project and slug (MIME type as stored)",
    )
    return ListResourceTemplatesResult(resource_templates=[template])


async def read_resource(ctx: ServerRequestContext[Runtime], params: ReadResourceRequestParams) -> ReadResourceResult:
    uri = str(params.uri)
    match = _ARTIFACT_URI.match(uri)
    if match is None:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"Unknown resource: {uri!r} (expected {ARTIFACT_URI_TEMPLATE})",
            data={"uri": uri, "code": "not_found"},
        )
    project, slug = match.groups()
    async with _tenant_session(ctx) as (session, tenant_id):
        try:
            artifact = await artifacts.get(session, tenant_id=tenant_id, project=project, slug=slug)
        except NotFound:
            raise NotFound(f"Unknown resource: {uri!r}") from None
    return ReadResourceResult(
        contents=[TextResourceContents(uri=uri, text=artifact.content, mime_type=artifact.content_type)]
    )


#: Method, params model and handler of each catalogue request answered from the tenant's rows. The same params
#: models the SDK's own registrations use (checked by tests/mcp/test_mcp_sdk_contract.py).
CATALOGUE_HANDLERS: tuple[tuple[str, type[RequestParams], Any], ...] = (
    ("prompts/list", PaginatedRequestParams, list_prompts),
    ("prompts/get", GetPromptRequestParams, get_prompt),
    ("resources/list", PaginatedRequestParams, list_resources),
    ("resources/templates/list", PaginatedRequestParams, list_resource_templates),
    ("resources/read", ReadResourceRequestParams, read_resource),
)


def lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    """The low-level ``Server`` inside an ``MCPServer``.

    The one SDK internal we rely on: ``MCPServer`` keeps it as ``_lowlevel_server`` and offers no public accessor.
    Everything done with it is public low-level API (``add_request_handler``). mcp is pinned to 2.3.x in
    pyproject.toml, and tests/mcp/test_mcp_sdk_contract.py fails if the attribute or its behaviour changes.
    """
    inner = server._lowlevel_server
    if not isinstance(inner, Server):
        raise TypeError("MCPServer no longer keeps its low-level Server in _lowlevel_server")
    return inner


def _lifespan(runtime: Runtime) -> Callable[[MCPServer[Runtime]], AbstractAsyncContextManager[Runtime]]:
    """The server's lifespan yields the process's runtime: tools and handlers read it from their context."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        yield runtime

    return lifespan


class VibeXPMCPServer(MCPServer[Runtime]):
    """``MCPServer`` whose prompts and resources are the calling tenant's stored prompts and artifacts."""

    def __init__(self, runtime: Runtime) -> None:
        tagger = UsageTagger()
        super().__init__(
            name="vibexp",
            title="VibeXP",
            description="Prompts, artifacts and memories for your AI tools",
            instructions=INSTRUCTIONS,
            version="1.0.0",
            middleware=[tagger],
            lifespan=_lifespan(runtime),
        )
        self.runtime = runtime
        #: Names the client in each request's usage record; the HTTP front door shares it (see mount.py).
        self.usage_tagger = tagger
        register_tools(self)
        inner = lowlevel_server(self)
        for method, params_type, handler in CATALOGUE_HANDLERS:
            inner.add_request_handler(method, params_type, handler)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """As the SDK's, but bad arguments read ``invalid_input: field: problem`` (no pydantic boilerplate)."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                message = f"Error executing tool {name}: invalid_input: {describe_validation_error(exc.__cause__)}"
                raise ToolError(message) from exc.__cause__
            raise


def create_mcp_server(runtime: Runtime) -> VibeXPMCPServer:
    return VibeXPMCPServer(runtime)
