"""The one place where MCP input text is checked, and where an unexpected failure becomes ``-32603``.

``RequestGuard`` is the outermost middleware of the low-level server, so every inbound message passes it before the
SDK looks anything up, validates anything or calls a handler, whichever way it came: the fast path
(``fastpath.py``), the SDK's handshake-era transport and its 2026-07-28 entry all run the server's middleware chain.

- **Input text.** PostgreSQL cannot take NUL (U+0000), no database and no JSON reply can carry a lone surrogate,
  and nothing needs a megabyte name. So the method, every string of the params (keys too) and, for ``tools/call``,
  every string of the tool's arguments, must be storable text (``vibexp.core.text.check_storable``); the method,
  names, URIs and cursors are also bounded in length. A bad method is ``-32600`` (invalid request), anything else in
  the params ``-32602`` (invalid params) naming where (``name: must not contain the NUL character (U+0000)``). A
  tool's arguments are the model's to correct, so they get a tool error in the same words instead
  (``VibeXPMCPServer.call_tool`` runs the same check). Nothing rejected is echoed back.
- **Unexpected failures.** Anything a handler raises that is not already an MCP error (or the SDK's own validation
  error) is logged here with its traceback and answered ``-32603 Internal error``, with no text of its own: not
  the SDK's handshake-era ``code 0`` carrying ``str(exc)``, which for a database error is the SQL statement, its
  tables and columns and the tenant id. A database outage still becomes the 503 it is for REST (``errors.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST
from pydantic import ValidationError

from vibexp.api.mcp.errors import unexpected_error
from vibexp.core.text import check_storable

__all__ = ["MAX_METHOD", "MAX_NAME", "RequestGuard", "bad_text"]

log = logging.getLogger(__name__)

#: Longest JSON-RPC method accepted (the spec's longest is under 40 characters).
MAX_METHOD = 128
#: Longest tool or prompt name, resource URI or cursor accepted (prompt names are at most 128 characters,
#: ``artifact://{project}/{slug}`` at most 270, cursors at most 200).
MAX_NAME = 512
#: Params members that name something to look up.
_NAMES = ("name", "uri", "cursor")
#: How much of a location (a path of params keys) an error message quotes.
_MAX_WHERE = 100


def _problem(text: str) -> str | None:
    try:
        check_storable(text)
    except ValueError as exc:
        return str(exc)
    return None


def bad_text(value: Any, *, root: str) -> tuple[str, str] | None:
    """The first string in ``value`` (a decoded JSON value) no database could store, as ``(where, problem)``:
    ``where`` is a dotted path of keys and list indexes (``arguments.tags.0``; ``root`` for ``value`` itself),
    ``problem`` says what is wrong without quoting the text. ``None`` if every string, dict keys included, is
    storable."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = _problem(item)
            if problem is not None:
                return (path or root)[:_MAX_WHERE], problem
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                problem = _problem(key) if isinstance(key, str) else None
                if problem is not None:
                    return (path or root)[:_MAX_WHERE], f"a key {problem}"
                stack.append((f"{path}.{key}" if path else str(key), sub))
        elif isinstance(item, list):
            stack.extend((f"{path}.{index}", sub) for index, sub in enumerate(item))
    return None


def _refusal(method: str, params: Mapping[str, Any] | None) -> MCPError | None:
    """Why this request may not go further, or None."""
    problem = _problem(method) or (f"must be at most {MAX_METHOD} characters" if len(method) > MAX_METHOD else None)
    if problem is not None:
        return MCPError(code=INVALID_REQUEST, message=f"method: {problem}", data={"code": "invalid_input"})
    if not params:
        return None
    for name in _NAMES:
        value = params.get(name)
        if isinstance(value, str) and len(value) > MAX_NAME:
            message = f"{name}: must be at most {MAX_NAME} characters"
            return MCPError(code=INVALID_PARAMS, message=message, data={"code": "invalid_input", "field": name})
    if method == "tools/call":  # the tool's own arguments get a tool error instead (VibeXPMCPServer.call_tool)
        params = {key: value for key, value in params.items() if key != "arguments"}
    found = bad_text(params, root="params")
    if found is not None:
        where, problem = found
        data = {"code": "invalid_input", "field": where}
        return MCPError(code=INVALID_PARAMS, message=f"{where}: {problem}", data=data)
    return None


class RequestGuard:
    """SDK server middleware, outermost: checks the input text, then turns an unexpected failure into
    ``-32603``."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, Mapping) else None
        refused = _refusal(ctx.method, params)
        if refused is not None:
            if ctx.request_id is None:  # a notification: nobody to answer, and a client's fault is not ours to log
                log.debug("dropped a notification with unusable text: %s", refused.error.message)
                return None
            raise refused
        try:
            return await call_next(ctx)
        except (MCPError, ValidationError):  # already JSON-RPC errors, and the SDK's texts hold no internals
            raise
        except Exception as exc:
            error = unexpected_error(exc, ctx.method)  # logged there, once
            if ctx.request_id is None:  # a notification has no answer to carry it (and the SDK would log it again)
                return None
            raise error from None
