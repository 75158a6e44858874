"""The VibeXP MCP server: tools, stored prompts as MCP prompts, artifacts as MCP resources.

``MCPServer`` keeps prompts and resources in fixed in-process registries that it returns in one page. Ours are
per-tenant rows in the database, so ``prompts/list``, ``prompts/get``, ``resources/list``,
``resources/templates/list`` and ``resources/read`` are answered by the module-level handlers below (the SDK's
public low-level handler signature, registered with ``Server.add_request_handler``), with the core services'
cursors, for the key that authenticated the HTTP request, through the core use cases (which check its scopes:
``prompts/*`` need ``prompts:read``, ``resources/*`` ``artifacts:read``). Tools use the SDK's machinery (``tools.py``),
except that ``tools/list`` shows a key only the tools its scopes allow, and a call of another tool is a tool error
naming the scope it needs, before its arguments are looked at. Both read the process's ``Runtime`` from the server's
lifespan context.

Every request passes ``guard.RequestGuard`` first (input text no database can store is refused before any lookup;
an unexpected failure is ``-32603``). Change notifications are delivered on 2026-07-28 ``subscriptions/listen``
streams and on the handshake era's GET event stream (``live.py``): 2026-07-28 declares ``listChanged`` and
``resources.subscribe``; handshake-era ``initialize`` declares ``listChanged`` (``HandshakeCapabilities``) but not
``resources.subscribe`` (that era's ``resources/subscribe`` POST cannot reach a stateless server's GET stream).
Lists carry ``ttlMs`` (``LIST_TTL_MS``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.caching import CacheableMethod, CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    CompleteRequestParams,
    GetPromptRequestParams,
    GetPromptResult,
    InputRequiredResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    Prompt,
    PromptArgument,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    RequestParams,
    Resource,
    ResourceTemplate,
    SubscriptionsListenRequestParams,
    TextContent,
    TextResourceContents,
    Tool,
)
from opentelemetry import trace  # the MCP SDK's own tracing API (a dependency of `mcp`)
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.api.mcp.completions import complete
from vibexp.api.mcp.confirm import ConfirmationGate, request_state_security
from vibexp.api.mcp.context import UsageTagger, caller_of, principal_of, runtime_of
from vibexp.api.mcp.errors import describe_validation_error, protocol_errors
from vibexp.api.mcp.guard import RequestGuard, bad_text
from vibexp.api.mcp.live import Listeners
from vibexp.api.mcp.schemas import artifact_uri
from vibexp.api.mcp.templates import placeholders, render
from vibexp.api.mcp.tools import TOOL_SCOPES, register_tools
from vibexp.core.access import Caller
from vibexp.core.content import versions
from vibexp.core.content.models import Artifact
from vibexp.core.content.models import Prompt as StoredPrompt
from vibexp.core.content.queries import ListQuery
from vibexp.core.content.usecases import artifacts, prompts
from vibexp.core.db import session_scope
from vibexp.core.errors import InsufficientScope, NotFound
from vibexp.core.runtime import Runtime

__all__ = [
    "ARTIFACT_URI_TEMPLATE",
    "CACHE_HINTS",
    "CATALOGUE_HANDLERS",
    "INSTRUCTIONS",
    "LIST_PAGE_SIZE",
    "LIST_TTL_MS",
    "VibeXPMCPServer",
    "create_mcp_server",
    "lowlevel_server",
]

ARTIFACT_URI_TEMPLATE = "artifact://{project}/{slug}"
#: How long a client may keep a list without asking again (``ttlMs``, 2026-07-28): a change reaches listening
#: clients as a notification (``live.py``), so a list is fresh until one says otherwise; a client that does not
#: listen asks again within a minute. Private: each key sees its own account's lists.
LIST_TTL_MS = 60_000
CACHE_HINTS: dict[CacheableMethod, CacheHint] = {
    method: CacheHint(ttl_ms=LIST_TTL_MS, scope="private")
    for method in ("prompts/list", "resources/list", "resources/templates/list", "tools/list")
}
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
async def _caller_session(ctx: ServerRequestContext[Runtime]) -> AsyncIterator[tuple[AsyncSession, Caller]]:
    """One (reading) unit of work for the calling key; domain errors leave as JSON-RPC errors."""
    with protocol_errors():
        caller = caller_of(ctx)
        async with session_scope(runtime_of(ctx).session_factory) as session:
            yield session, caller


async def list_prompts(ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None) -> ListPromptsResult:
    async with _caller_session(ctx) as (session, caller):
        cursor = params.cursor if params else None
        page, served = await prompts.catalogue(session, caller=caller, limit=LIST_PAGE_SIZE, cursor=cursor)
    items = [_mcp_prompt(p, served.get(p.id)) for p in page.items]
    return ListPromptsResult(prompts=items, next_cursor=page.next_cursor)


async def get_prompt(ctx: ServerRequestContext[Runtime], params: GetPromptRequestParams) -> GetPromptResult:
    """The version labelled ``production`` when there is one, else the latest.

    README.md "Prompt versions and labels"."""
    async with _caller_session(ctx) as (session, caller):
        try:
            prompt = await prompts.serving(session, caller=caller, name=params.name)
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
    async with _caller_session(ctx) as (session, caller):
        query = ListQuery(limit=LIST_PAGE_SIZE, cursor=params.cursor if params else None)
        page = await artifacts.list(session, caller=caller, query=query)
    return ListResourcesResult(resources=[_resource(a) for a in page.items], next_cursor=page.next_cursor)


async def list_resource_templates(
    ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None
) -> ListResourceTemplatesResult:
    with protocol_errors():
        artifacts.check_readable(caller_of(ctx))
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
    async with _caller_session(ctx) as (session, caller):
        try:
            artifact = await artifacts.get(session, caller=caller, where=artifacts.at(project, slug))
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


class ToolCatalogue:
    """``tools/list`` for each key: the tools its scopes allow, in catalogue order.

    Keys share a handful of scope sets, so each set's answer is built once and kept (``granted`` is a frozenset,
    hashable): listing costs a dict lookup, as it did before scopes.
    """

    def __init__(self, tools: list[Tool]) -> None:
        self._tools = tools
        self._by_scopes: dict[frozenset[str], ListToolsResult] = {}

    def visible(self, granted: frozenset[str]) -> ListToolsResult:
        found = self._by_scopes.get(granted)
        if found is None:
            allowed = [tool for tool in self._tools if TOOL_SCOPES[tool.name] in granted]
            found = self._by_scopes[granted] = ListToolsResult(tools=allowed)
        return found


#: What the handshake era's GET event stream delivers (``live.HANDSHAKE_NOTIFICATIONS``), as the SDK's options.
HANDSHAKE_DELIVERED = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)


class HandshakeCapabilities:
    """Low-level middleware: a handshake-era ``initialize`` result declares the capabilities the SDK derives from
    this server's handlers with ``HANDSHAKE_DELIVERED``. The stateless transport builds that result from
    ``Server.create_initialization_options()`` with no notification options (every ``listChanged`` false) and
    offers no way to pass them; this is where they are passed."""

    def __init__(self, server: Server[Any]) -> None:
        self._server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "initialize" and isinstance(result, dict) and "capabilities" in result:
            declared = self._server.get_capabilities(HANDSHAKE_DELIVERED)
            result["capabilities"] = declared.model_dump(mode="json", by_alias=True, exclude_none=True)
        return result


def tracing_configured() -> bool:
    """Whether an OpenTelemetry tracer provider is installed (else every span is a no-op)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


class VibeXPMCPServer(MCPServer[Runtime]):
    """``MCPServer`` whose prompts and resources are the calling tenant's stored prompts and artifacts, and whose
    tools are those the calling key's scopes allow."""

    def __init__(self, runtime: Runtime, *, listeners: Listeners | None = None) -> None:
        tagger = UsageTagger()
        super().__init__(
            name="vibexp",
            title="VibeXP",
            description="Prompts, artifacts and memories for your AI tools",
            instructions=INSTRUCTIONS,
            version="1.0.0",
            middleware=[tagger, ConfirmationGate.for_settings(runtime.settings)],
            # Sealed with the deployment's secret, so a confirmation asked by one replica is answered on any.
            request_state_security=request_state_security(runtime.settings),
            lifespan=_lifespan(runtime),
            # Not the SDK's listen handler (its bus tells every stream everything): ours, per key (_register_live).
            subscriptions=False,
            cache_hints=CACHE_HINTS,
        )
        self.runtime = runtime
        #: Names the client in each request's usage record; the HTTP front door shares it (see mount.py).
        self.usage_tagger = tagger
        register_tools(self)
        self._catalogue: ToolCatalogue | None = None
        inner = lowlevel_server(self)
        if not tracing_configured():
            # The SDK wraps every message in an OpenTelemetry span (its OpenTelemetryMiddleware), a no-op without a
            # tracer provider, yet ~10% of a tools/call's CPU (docs/performance.md). Kept when one is configured
            # before the app is built (``opentelemetry-instrument``, OTEL_PYTHON_TRACER_PROVIDER).
            inner.middleware[:] = [m for m in inner.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]
        # Outermost, before the SDK's own middleware: input text is checked before anything reads it, and whatever
        # fails unexpectedly below is -32603 (guard.py).
        inner.middleware.insert(0, RequestGuard())
        inner.middleware.append(HandshakeCapabilities(inner))
        for method, params_type, handler in CATALOGUE_HANDLERS:
            inner.add_request_handler(method, params_type, handler)
        inner.add_request_handler("tools/list", PaginatedRequestParams, self._list_allowed_tools)
        self.listeners = self._register_live(listeners or Listeners())
        self._register_completions()

    def _register_completions(self) -> None:
        """Serve ``completion/complete`` (``completions.py``); the SDK then declares ``completions`` at every
        revision."""
        lowlevel_server(self).add_request_handler("completion/complete", CompleteRequestParams, complete)

    def _register_live(self, listeners: Listeners) -> Listeners:
        """Serve ``subscriptions/listen`` with per-key streams (``live.py``). At 2026-07-28 the SDK derives
        ``listChanged`` and ``resources.subscribe`` from this handler being served; handshake-era ``initialize``
        declares ``listChanged`` through ``HandshakeCapabilities`` (the GET stream, ``live.EventStreams``), and
        ``resources.subscribe`` false (no ``resources/subscribe``)."""
        lowlevel_server(self).add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listeners)
        return listeners

    async def _list_allowed_tools(
        self, ctx: ServerRequestContext[Runtime], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        if self._catalogue is None:  # the SDK's own listing, once: schemas, annotations, titles as it renders them
            self._catalogue = ToolCatalogue(await self.list_tools())
        with protocol_errors():
            granted = principal_of(ctx).granted
        return self._catalogue.visible(granted)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """As the SDK's, but a tool the key's scopes do not allow is refused before its arguments are looked at
        (``insufficient_scope: ... 'memories:write' ...``), an argument holding text no database can store is refused
        before anything looks it up (the guard's check, as a tool error: ``invalid_input: query: must not contain the
        NUL character (U+0000)``), and bad arguments read ``invalid_input: field: problem`` (no pydantic
        boilerplate)."""
        needed = TOOL_SCOPES.get(name)
        if needed is not None and context is not None and needed not in principal_of(context.request_context).granted:
            refused = InsufficientScope(needed, f"This API key lacks the scope {needed!r} the tool {name} needs")
            raise ToolError(f"{refused.code}: {refused.message}")
        unusable = bad_text(arguments, root="arguments")
        if unusable is not None:
            where, problem = unusable
            raise ToolError(f"Error executing tool {name}: invalid_input: {where}: {problem}")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                message = f"Error executing tool {name}: invalid_input: {describe_validation_error(exc.__cause__)}"
                raise ToolError(message) from exc.__cause__
            raise


def create_mcp_server(runtime: Runtime, *, listeners: Listeners | None = None) -> VibeXPMCPServer:
    return VibeXPMCPServer(runtime, listeners=listeners)
