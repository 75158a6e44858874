"""The one place where domain errors become MCP errors.

MCP has two error channels, and which one applies depends on the primitive:

- **Tools** report failures *inside* a successful result (``isError: true`` with readable text), so the model can
  see what went wrong and correct its call: ``not_found: prompt not found``. The SDK turns a ``ToolError`` into
  exactly that.
- **Prompts and resources** answer a bad request with a JSON-RPC error; the spec names ``-32602`` (invalid params)
  for an unknown prompt, a missing required prompt argument and an unknown resource.

Both carry the stable domain ``code`` (the same one the REST API puts in ``{"error": {"code"}}``).

A key without the scope a request needs (``insufficient_scope``): a tool error naming the scope, as any other; for
prompts and resources a JSON-RPC error with ``FORBIDDEN``, an implementation-defined code of the server-error range
(-32000 to -32099; the MCP spec defines none for authorisation), and ``data.scope`` naming the scope.

Anything else a request raises is the server's fault: ``unexpected_error`` logs it with its traceback and answers
``-32603 Internal error`` with no text of its own (``guard.RequestGuard`` applies it to every request).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import ValidationError

from vibexp.api.middleware.outage import note_database_unavailable
from vibexp.core import errors
from vibexp.core.outage import is_database_unavailable

__all__ = [
    "FORBIDDEN",
    "INTERNAL_ERROR_MESSAGE",
    "describe_validation_error",
    "protocol_errors",
    "tool_errors",
    "unexpected_error",
]

log = logging.getLogger(__name__)

#: JSON-RPC error code of a prompts/resources request the key's scopes do not allow.
FORBIDDEN = -32003
#: Domain errors that mean "the caller asked for something wrong", i.e. invalid params, not a server fault.
_CLIENT_ERRORS = (errors.NotFound, errors.InvalidInput, errors.AlreadyExists, errors.PreconditionFailed)
#: The whole message of an unexpected failure: JSON-RPC's own name for -32603, nothing from the exception.
INTERNAL_ERROR_MESSAGE = "Internal error"


def describe_validation_error(exc: ValidationError) -> str:
    """``field: message`` for each problem, without echoing the rejected values back."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


@contextmanager
def tool_errors() -> Iterator[None]:
    """Inside a tool: domain and validation errors become a tool error result the model can read."""
    try:
        yield
    except errors.VibeXPError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from exc
    except ValidationError as exc:
        raise ToolError(f"invalid_input: {describe_validation_error(exc)}") from exc
    except Exception as exc:
        _raise_if_unavailable(exc)
        raise


@contextmanager
def protocol_errors() -> Iterator[None]:
    """Inside a prompts/resources handler: domain errors become JSON-RPC errors (invalid params for a bad ask)."""
    try:
        yield
    except errors.InsufficientScope as exc:
        raise MCPError(code=FORBIDDEN, message=exc.message, data={"code": exc.code, "scope": exc.scope}) from exc
    except _CLIENT_ERRORS as exc:
        raise MCPError(code=INVALID_PARAMS, message=exc.message, data={"code": exc.code}) from exc
    except errors.VibeXPError as exc:
        raise MCPError(code=INTERNAL_ERROR, message=exc.message, data={"code": exc.code}) from exc
    except Exception as exc:
        _raise_if_unavailable(exc)
        raise


def _raise_if_unavailable(exc: Exception) -> None:
    """A database outage: the whole HTTP answer becomes 503 (the front door's outage step), as for REST. An ``MCPError``
    (not a tool error) so the SDK neither logs a traceback nor a line per call."""
    if is_database_unavailable(exc):
        note_database_unavailable()
        raise MCPError(
            code=INTERNAL_ERROR, message="The database is unreachable", data={"code": "service_unavailable"}
        ) from exc


def unexpected_error(exc: Exception, method: str) -> MCPError:
    """The JSON-RPC error for a failure nobody anticipated: ``-32603 Internal error``, logged here with the
    traceback (once: the SDK sees an ``MCPError`` and logs nothing more). A database outage is the one exception:
    the 503 that ``_raise_if_unavailable`` makes of it."""
    try:
        _raise_if_unavailable(exc)
    except MCPError as unavailable:
        return unavailable
    log.error("MCP request %r failed", method, exc_info=exc)
    return MCPError(code=INTERNAL_ERROR, message=INTERNAL_ERROR_MESSAGE)
