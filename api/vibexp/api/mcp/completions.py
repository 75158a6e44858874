"""``completion/complete``: values for prompt arguments and for the ``artifact://{project}/{slug}`` template, by prefix.

What completes, for the calling key's account only:

* ``ref/resource`` ``artifact://{project}/{slug}``: ``project`` (the account's artifact projects) and ``slug`` (the
  slugs of the project in ``context.arguments.project``; none without it);
* ``ref/prompt`` ``{name}``: the prompt's arguments are its ``{{placeholders}}`` (as ``prompts/list`` shows them).
  An argument named like a tool argument completes what that tool takes: ``name`` / ``prompt`` the account's
  prompt names (``get_prompt``'s ``name``), ``project`` and ``slug`` as above (``get_artifact``'s). Other
  placeholders hold free text: no values. MCP 2026-07-28 has no reference for tool arguments themselves, so these
  are the tool arguments' completions a client can ask for.

At most ``MAX_VALUES`` (100, the protocol's limit) values in order, with ``hasMore``. A prompt the key may not read
(another account's, one that does not exist, a key without ``prompts:read``) and a template whose rows the key may
not read complete to nothing: the answer never tells whether such a thing exists. A value longer than
``MAX_PREFIX`` characters, an argument a prompt or the template does not have, and an unknown template are
``-32602`` invalid params; text no database can store was already refused by ``guard.RequestGuard``.
Every query walks an index (``vibexp.core.content.completion``).
"""

from __future__ import annotations

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    PromptReference,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.api.mcp.context import caller_of, runtime_of
from vibexp.api.mcp.errors import protocol_errors
from vibexp.api.mcp.templates import placeholders
from vibexp.core.access import Caller
from vibexp.core.content.completion import MAX_PREFIX
from vibexp.core.content.usecases import artifacts, prompts
from vibexp.core.db import session_scope
from vibexp.core.errors import InsufficientScope, NotFound
from vibexp.core.runtime import Runtime

__all__ = ["ARTIFACT_TEMPLATE_ARGUMENTS", "MAX_VALUES", "complete"]

#: The protocol's cap on values per answer.
MAX_VALUES = 100
ARTIFACT_TEMPLATE = "artifact://{project}/{slug}"
ARTIFACT_TEMPLATE_ARGUMENTS = ("project", "slug")
#: Prompt placeholders whose values are the account's prompt names (``get_prompt``'s argument).
_PROMPT_NAME_ARGUMENTS = frozenset({"name", "prompt"})
_NOTHING = CompleteResult(completion=Completion(values=[], has_more=False))


def _invalid(message: str) -> MCPError:
    return MCPError(INVALID_PARAMS, message, data={"code": "invalid_input"})


async def complete(ctx: ServerRequestContext[Runtime], params: CompleteRequestParams) -> CompleteResult:
    argument, value = params.argument.name, params.argument.value
    if len(value) > MAX_PREFIX:
        raise _invalid(f"argument.value: at most {MAX_PREFIX} characters, not {len(value)}")
    context = dict(params.context.arguments or {}) if params.context is not None else {}
    with protocol_errors():
        caller = caller_of(ctx)
        factory = runtime_of(ctx).session_factory
    if not isinstance(params.ref, PromptReference):
        if params.ref.uri != ARTIFACT_TEMPLATE:
            raise _invalid(f"Unknown resource template: {params.ref.uri[:200]!r} (expected {ARTIFACT_TEMPLATE})")
        if argument not in ARTIFACT_TEMPLATE_ARGUMENTS:
            raise _invalid(f"{ARTIFACT_TEMPLATE} has no argument {argument[:100]!r}")
    with protocol_errors():
        try:
            async with session_scope(factory) as session:
                if isinstance(params.ref, PromptReference):
                    prompt = await prompts.serving(session, caller=caller, name=params.ref.name)
                    if argument not in placeholders(prompt.content):
                        raise _invalid(f"The prompt {params.ref.name[:200]!r} has no argument {argument[:100]!r}")
                return await _values(session, caller, argument, value, context)
        except (NotFound, InsufficientScope):  # not the caller's to know about: nothing, as for no match
            return _NOTHING


async def _values(
    session: AsyncSession, caller: Caller, argument: str, value: str, context: dict[str, str]
) -> CompleteResult:
    if argument in _PROMPT_NAME_ARGUMENTS:
        found, more = await prompts.complete_names(session, caller=caller, prefix=value, limit=MAX_VALUES)
    elif argument == "project":
        found, more = await artifacts.complete_projects(session, caller=caller, prefix=value, limit=MAX_VALUES)
    elif argument == "slug":
        project = context.get("project")
        if not project or len(project) > MAX_PREFIX:
            return _NOTHING
        found, more = await artifacts.complete_slugs(
            session, caller=caller, project=project, prefix=value, limit=MAX_VALUES
        )
    else:
        return _NOTHING
    return CompleteResult(completion=Completion(values=found, has_more=more))
