"""Confirmation of destructive tools: a key with ``confirm_destructive`` asks the person, by form elicitation, before
a tool deletes or overwrites anything, and the tool does nothing unless the person accepts.

For 2026-07-28 clients, our stateless server (one JSON answer per POST) does not send ``elicitation/create`` in the
middle of a call: that revision has the multi-round-trip form for exactly that: the first ``tools/call`` is answered
with an ``InputRequiredResult`` holding the form (``input_requests``) and an opaque ``request_state``; the client
shows the form and calls the tool again, with the same arguments, carrying the person's answer
(``input_responses``) and the state echoed back. ``ConfirmationGate`` is SDK server middleware, inside the SDK's
``RequestStateBoundary``, which seals the state it returns (AES-GCM, bound to the method, the tool and a digest of
its arguments, with an expiry) and refuses a state it did not mint: the person confirms *this* call, nothing else.
Inside, the state names the key and when the question was asked: another key's state, or an answer later than
``mcp_confirm_timeout`` seconds, is a protocol error (``-32602``), as is an answer that does not match the form or
an answer sent without the question ever being asked.

Which calls ask: ``delete_*`` of something that exists, ``update_*`` of something that exists, and
``save_artifact`` over an existing artifact (a new one is not destructive). A call whose target does not exist goes
straight to the tool, which reports it (nothing would be lost). The question says in plain words what will be
deleted or replaced, read with the caller's own key (so it never names what the key may not read).

Handshake-era clients (2025-06-18 / 2025-03-26 ``initialize``: Claude Code, Cursor, VS Code) are asked too, the
way their revision asks: ``handshake.HandshakeDoor`` answers their call with an SSE stream carrying
``elicitation/create`` (the same question, the same form), takes the person's answer from whichever replica it
reaches (``vibexp.core.relayed_answers``), and then runs the tool, or not. What such a client declared at
``initialize`` travels in its sealed ``Mcp-Session-Id`` (``sessions.py``), which the gate reads here.

A client that declared no form elicitation (``capabilities.elicitation``, or a handshake-era client without a
session that says it declared it) does not see those tools in ``tools/list`` for such a key, and a call of one is a
tool error saying why (``confirmation_unavailable``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.request_state import RequestStateSecurity
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    ClientCapabilities,
    ElicitRequest,
    ElicitRequestFormParams,
    InputRequiredResult,
    ListToolsResult,
    TextContent,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from vibexp.api.mcp.context import caller_of, principal_of, runtime_of
from vibexp.api.mcp.sessions import is_confirmed, session_in
from vibexp.api.settings import ApiSettings
from vibexp.core.access import Caller
from vibexp.core.config import Settings
from vibexp.core.content.usecases import artifacts, memories, prompts
from vibexp.core.db import session_scope
from vibexp.core.errors import NotFound, VibeXPError

__all__ = [
    "CONFIRMED_TOOLS",
    "DEFAULT_TIMEOUT",
    "ConfirmationGate",
    "Question",
    "can_elicit",
    "declined",
    "form_action",
    "question_for",
    "question_schema",
    "request_state_security",
]

#: Seconds a person has to answer (the ``mcp_confirm_timeout`` setting overrides it).
DEFAULT_TIMEOUT = 300.0
#: The one key of the form (and of ``input_requests``).
FIELD = "confirm"
#: The tools that ask first: every deleting tool, and every tool that overwrites what exists.
CONFIRMED_TOOLS = frozenset(
    {"delete_prompt", "delete_artifact", "delete_memory", "update_prompt", "update_memory", "save_artifact"}
)
_MAX_QUOTE = 80


def can_elicit(capabilities: ClientCapabilities | None) -> bool:
    """Whether a client with these declared capabilities can show a form (``elicitation: {}`` is form, as the
    2025-06-18 revision declared it; a client declaring only ``url`` cannot)."""
    if capabilities is None or capabilities.elicitation is None:
        return False
    declared = capabilities.elicitation
    return declared.form is not None or declared.url is None


def question_schema(verb: str) -> dict[str, Any]:
    """The form: one required checkbox, so an accepted answer says yes explicitly."""
    return {
        "type": "object",
        "properties": {FIELD: {"type": "boolean", "title": f"Yes, {verb} it", "default": False}},
        "required": [FIELD],
    }


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _MAX_QUOTE else flat[: _MAX_QUOTE - 1] + "…")


@dataclass(frozen=True, slots=True)
class Question:
    verb: str  # "delete" or "replace"
    message: str


async def question_for(
    factory: async_sessionmaker[AsyncSession], caller: Caller, tool: str, args: Mapping[str, Any]
) -> Question | None:
    """What this call would destroy, in plain words; ``None`` when nothing exists to destroy (or the arguments are
    not even of the right shape: the tool reports those)."""
    deleting = tool.startswith("delete_")
    verb = "delete" if deleting else "replace"
    try:
        async with session_scope(factory) as session:
            if tool in ("delete_prompt", "update_prompt"):
                prompt = await prompts.get(session, caller=caller, where=prompts.by_name(str(args["name"])))
                what = f"the prompt {prompt.name!r} (version {prompt.version}, {len(prompt.content)} characters)"
            elif tool in ("delete_artifact", "save_artifact"):
                project, slug = str(args["project"]), str(args["slug"])
                found = await artifacts.get(session, caller=caller, where=artifacts.at(project, slug))
                what = (
                    f"the artifact {project}/{slug}, {found.title!r} (version {found.version}, "
                    f"{len(found.content)} characters)"
                )
            else:
                memory = await memories.get(session, caller=caller, where=memories.by_id(str(args["id"])))
                what = f"the memory {memory.id}: {_quote(memory.content)}"
    except (KeyError, NotFound):
        return None
    except VibeXPError:  # e.g. the key may not read it: the tool refuses the call itself, with its own words
        return None
    if deleting:
        return Question(verb, f"Delete {what}? This cannot be undone.")
    changes = sorted(k for k, v in args.items() if v is not None and k not in ("name", "project", "slug", "id"))
    changing = f" (changing {', '.join(changes)})" if changes else ""
    return Question(verb, f"Replace {what} with the new version{changing}? The current content is overwritten.")


def declined(tool: str, action: str) -> CallToolResult:
    said = "declined" if action == "decline" else "cancelled"
    text = f"{said}: the person {said} the confirmation, so {tool} did nothing; nothing was changed"
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _unavailable(tool: str) -> CallToolResult:
    text = (
        f"confirmation_unavailable: this key or connected app asks the person before {tool} (confirm_destructive), "
        "and this client declared no form elicitation to ask with; nothing was changed"
    )
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _unasked(tool: str) -> CallToolResult:
    text = (
        f"confirmation_required: what {tool} would change appeared while the call was on its way, so the person "
        "was not asked; nothing was changed. Call the tool again to be asked"
    )
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _bad_answer(message: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=message, data={"code": "invalid_confirmation"})


class ConfirmationGate:
    """SDK server middleware (inside the SDK's request-state boundary): see the module's docstring."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    @classmethod
    def for_settings(cls, settings: Settings) -> ConfirmationGate:
        return cls(settings.mcp_confirm_timeout if isinstance(settings, ApiSettings) else DEFAULT_TIMEOUT)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in ("tools/list", "tools/call"):
            return await call_next(ctx)
        principal = principal_of(ctx)
        if not principal.confirm_destructive:
            return await call_next(ctx)
        scope = ctx.request.scope if isinstance(ctx.request, Request) else {}
        handshake = session_in(scope)
        elicits = can_elicit(ctx.session.client_capabilities) or (handshake is not None and handshake.elicits)
        if ctx.method == "tools/list":
            listed = await call_next(ctx)
            return listed if elicits else _without_confirmed(listed)
        params: Mapping[str, Any] = ctx.params if isinstance(ctx.params, Mapping) else {}
        tool = params.get("name")
        if tool not in CONFIRMED_TOOLS:
            return await call_next(ctx)
        if not elicits:
            return _unavailable(str(tool))
        if handshake is not None and is_confirmed(scope):  # the person accepted (handshake.HandshakeDoor asked)
            return await call_next(ctx)
        responses = params.get("inputResponses")
        if responses is None:
            arguments = params.get("arguments")
            args = arguments if isinstance(arguments, Mapping) else {}
            question = await question_for(runtime_of(ctx).session_factory, caller_of(ctx), str(tool), args)
            if question is None:
                return await call_next(ctx)
            if handshake is not None:  # created since the front door looked (it asks first): ask on the next call
                return _unasked(str(tool))
            form = ElicitRequestFormParams(message=question.message, requested_schema=question_schema(question.verb))
            asked = json.dumps({"k": principal.key_id, "at": time.time()})
            return InputRequiredResult(input_requests={FIELD: ElicitRequest(params=form)}, request_state=asked)
        action = self._answer(params, principal.key_id)
        if action != "accept":
            return declined(str(tool), action)
        return await call_next(ctx)

    def _answer(self, params: Mapping[str, Any], key_id: str) -> str:
        """The person's answer (``accept``, ``decline`` or ``cancel``), after checking that it answers a question
        this server asked this key within the timeout, in the form's shape."""
        raw_state = params.get("requestState")
        try:
            asked = json.loads(raw_state) if isinstance(raw_state, str) else None
        except ValueError:
            asked = None
        if not isinstance(asked, dict) or asked.get("k") != key_id or not isinstance(asked.get("at"), int | float):
            raise _bad_answer(
                "This answer does not belong to a confirmation this server asked for: call the tool again"
            )
        if time.time() - asked["at"] > self.timeout:
            raise _bad_answer(
                f"The confirmation expired (the person has {self.timeout:g} seconds to answer): call the tool again"
            )
        responses = params.get("inputResponses")
        return form_action(responses.get(FIELD) if isinstance(responses, Mapping) else None, f"inputResponses.{FIELD}")


def form_action(answer: object, where: str) -> str:
    """The person's answer to the confirmation form (an ``ElicitResult``: ``accept`` with the box checked,
    ``decline`` — an unchecked box too — or ``cancel``); a ``-32602`` protocol error when ``answer`` is not in the
    form's shape (``where`` names it in the message)."""
    if not isinstance(answer, Mapping) or answer.get("action") not in ("accept", "decline", "cancel"):
        raise _bad_answer(f"{where}: expected the answer to the confirmation form")
    action = str(answer["action"])
    if action != "accept":
        return action
    content = answer.get("content")
    if not isinstance(content, Mapping) or not isinstance(content.get(FIELD), bool) or set(content) != {FIELD}:
        raise _bad_answer(f"{where}.content: expected {{{FIELD!r}: true or false}}, as the form asks")
    return "accept" if content[FIELD] else "decline"


def _without_confirmed(listed: HandlerResult) -> HandlerResult:
    """A ``tools/list`` answer without the tools that would ask first."""
    if isinstance(listed, ListToolsResult):
        return listed.model_copy(update={"tools": [t for t in listed.tools if t.name not in CONFIRMED_TOOLS]})
    if isinstance(listed, Mapping) and isinstance(listed.get("tools"), list):
        tools = [t for t in listed["tools"] if not (isinstance(t, Mapping) and t.get("name") in CONFIRMED_TOOLS)]
        return {**listed, "tools": tools}
    return listed


def request_state_security(settings: Settings) -> RequestStateSecurity:
    """How the SDK seals ``request_state``: under a key derived from the deployment's ``secret_key`` (every replica
    has it), so the answer to a confirmation asked by one replica is accepted by any; the SDK's default is a key of
    this process alone."""
    return RequestStateSecurity(keys=[("vibexp/mcp/request-state/" + settings.secret_key).encode()], audience="vibexp")
