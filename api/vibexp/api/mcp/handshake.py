"""Asking handshake-era clients before destructive tools: ``elicitation/create`` on the call's SSE response.

A key with ``confirm_destructive`` asks the person before a tool deletes or overwrites anything (``confirm.py``).
2026-07-28 clients are asked through ``InputRequiredResult``; handshake-era clients (2025-06-18 / 2025-03-26
``initialize``: Claude Code, Cursor, VS Code, the TypeScript SDK client) the way their revision's streamable HTTP
transport allows: the server answers the POST of ``tools/call`` with ``text/event-stream``, sends its own request
(``elicitation/create``) on that stream, and the client answers it with a new POST holding the JSON-RPC response.

``HandshakeDoor`` is called by ``mount.McpFrontDoor`` for handshake-era POSTs of a confirming key, or of any request
carrying an ``Mcp-Session-Id``:

- ``initialize`` by a confirming key: the answer carries a sealed ``Mcp-Session-Id`` holding what the client
  declared (``sessions.py``). Other keys get none, as before: they pay nothing new.
- a request with an ``Mcp-Session-Id``: opened (cached by value); one that does not open or was issued to another
  key is 404 (the client starts a new session, as the spec says). The opened session goes on in the ASGI scope, so
  ``confirm.ConfirmationGate`` shows the destructive tools in ``tools/list`` when the client declared form
  elicitation (and hides them otherwise, or without a session).
- ``tools/call`` of a tool that asks (``confirm.CONFIRMED_TOOLS``), from a session that declared form elicitation,
  with something to destroy (``confirm.question_for``: the same plain-words question, read with the caller's key):
  a question row is opened in the database (``vibexp.core.relayed_answers``: a random, unguessable request id bound
  to the key and the session, expiring after ``mcp_confirm_timeout``), the response becomes an SSE stream with the
  ``elicitation/create`` request (the same form as the 2026-07-28 round trip), then ``: keep-alive`` comments while
  the row is polled (every ``poll_seconds``). Accept: the call goes on to the tool (the gate lets exactly this
  request through) and its JSON-RPC answer is the stream's last event. Decline or cancel: the same tool result as
  the 2026 path (``confirm.declined``), nothing changed. No answer in time: a tool error
  (``confirmation_timeout``), nothing changed. An answer not in the form's shape: ``-32602``
  (``invalid_confirmation``), nothing changed. The client going away ends the wait at once; the row is deleted
  however the wait ends.
- a POST holding a JSON-RPC response to one of our ids (the person's answer), on whichever replica it lands: checked
  against the form and recorded for the waiting call, 202. For a question this key and session were not asked (or
  one already closed) 404; already answered 409; too late 410; not in the form's shape 400 (and the waiting call
  ends with ``-32602``). Nothing runs on any of these.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, ClientCapabilities, TextContent
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from vibexp.api.errors import error_response
from vibexp.api.mcp.confirm import CONFIRMED_TOOLS, can_elicit, declined, form_action, question_for, question_schema
from vibexp.api.mcp.errors import INTERNAL_ERROR_MESSAGE
from vibexp.api.mcp.fastpath import replayed
from vibexp.api.mcp.live import SSE_HEADERS, SSE_KEEPALIVE, while_connected
from vibexp.api.mcp.sessions import HandshakeSession, SessionSeal, mark_confirmed, with_session
from vibexp.api.request_state import request_state
from vibexp.core import relayed_answers
from vibexp.core.db import session_scope
from vibexp.core.keys.verifier import Principal
from vibexp.core.runtime import Runtime

__all__ = ["QUESTION_ID_PREFIX", "HandshakeDoor"]

log = logging.getLogger(__name__)

#: Every request id this server mints for a question starts so (then 32 random URL-safe characters).
QUESTION_ID_PREFIX = "vibexp-confirm-"
_SEND_TIMEOUT = 30.0

#: Forwards a request to the SDK (through the front door's own error rewriting).
Forward = Callable[[Scope, Receive, Send], Awaitable[None]]


def _declared(params: object) -> tuple[bool, str, str]:
    """From ``initialize`` params: whether the client declared form elicitation, its name, the version it asked."""
    if not isinstance(params, Mapping):
        return False, "", ""
    try:
        capabilities: ClientCapabilities | None = ClientCapabilities.model_validate(params.get("capabilities") or {})
    except ValidationError:
        capabilities = None
    info = params.get("clientInfo")
    name = info.get("name") if isinstance(info, Mapping) else None
    version = params.get("protocolVersion")
    return can_elicit(capabilities), name if isinstance(name, str) else "", version if isinstance(version, str) else ""


def _event(message: Mapping[str, Any] | bytes) -> bytes:
    data = message if isinstance(message, bytes) else json.dumps(message, separators=(",", ":")).encode()
    return b"event: message\ndata: " + data + b"\n\n"


def _result(request_id: Any, result: CallToolResult) -> dict[str, Any]:
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"jsonrpc": "2.0", "id": request_id, "result": dumped}


def _tool_error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _is_response(message: Mapping[str, Any]) -> bool:
    return "method" not in message and "id" in message and ("result" in message or "error" in message)


class HandshakeDoor:
    """See the module docstring."""

    def __init__(
        self,
        runtime: Runtime,
        seal: SessionSeal,
        *,
        timeout: float,
        keepalive_seconds: float,
        poll_seconds: float = 0.1,
    ) -> None:
        self.runtime = runtime
        self.seal = seal
        self.timeout = timeout
        self.keepalive_seconds = keepalive_seconds
        self.poll_seconds = poll_seconds

    def session(self, token: str, principal: Principal) -> HandshakeSession | None:
        return self.seal.open(token, principal.key_id)

    @staticmethod
    async def unknown_session(scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(
            404,
            "session_not_found",
            "Unknown MCP session (Mcp-Session-Id): start a new session with initialize",
        )(scope, receive, send)

    async def post(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        body: bytes,
        principal: Principal,
        token: str | None,
        forward: Forward,
    ) -> bool:
        """Answer the POST if it is this module's to answer (``True``); else leave it to the SDK (``False``),
        with the request's session (if any) in the scope."""
        session: HandshakeSession | None = None
        if token is not None:
            session = self.session(token, principal)
            if session is None:
                await self.unknown_session(scope, receive, send)
                return True
            with_session(scope, session)
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return False
        if not isinstance(message, dict):
            return False
        request_id = message.get("id")
        if _is_response(message) and isinstance(request_id, str) and request_id.startswith(QUESTION_ID_PREFIX):
            await self._take_answer(scope, receive, send, message, principal, session)
            return True
        if not principal.confirm_destructive:
            return False
        method = message.get("method")
        if method == "initialize":
            await self._initialize(scope, receive, send, message.get("params"), principal, forward)
            return True
        params = message.get("params")
        if (
            method == "tools/call"
            and session is not None
            and session.elicits
            and isinstance(params, Mapping)
            and params.get("name") in CONFIRMED_TOOLS
            and isinstance(request_id, str | int)
            and not isinstance(request_id, bool)
        ):
            return await self._ask(scope, receive, send, body, request_id, params, principal, session, forward)
        return False

    async def _initialize(
        self, scope: Scope, receive: Receive, send: Send, params: object, principal: Principal, forward: Forward
    ) -> None:
        elicits, client_name, version = _declared(params)
        token = self.seal.issue(principal.key_id, elicits=elicits, client_name=client_name, protocol_version=version)

        async def with_session_id(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = [*message.get("headers", []), (b"mcp-session-id", token.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await forward(scope, receive, with_session_id)

    async def _ask(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes,
        request_id: str | int,
        params: Mapping[str, Any],
        principal: Principal,
        session: HandshakeSession,
        forward: Forward,
    ) -> bool:
        state = request_state(scope)
        if state is None:
            return False
        tool = str(params["name"])
        arguments = params.get("arguments")
        question = await question_for(
            self.runtime.session_factory, state.caller(), tool, arguments if isinstance(arguments, Mapping) else {}
        )
        if question is None:  # nothing to destroy: the tool reports it
            return False
        question_id = QUESTION_ID_PREFIX + secrets.token_urlsafe(24)
        async with session_scope(self.runtime.session_factory, write=True) as db:
            opened = await relayed_answers.open_question(
                db, question_id=question_id, key_id=principal.key_id, session_nonce=session.nonce, seconds=self.timeout
            )
        if not opened:
            refused = _tool_error(
                f"too_many_confirmations: this API key already has {relayed_answers.MAX_WAITING_PER_KEY} "
                f"confirmations waiting for an answer; {tool} did nothing; nothing was changed"
            )
            await Response(json.dumps(_result(request_id, refused)), media_type="application/json")(
                scope, receive, send
            )
            return True
        asking = {
            "jsonrpc": "2.0",
            "id": question_id,
            "method": "elicitation/create",
            "params": {"message": question.message, "requestedSchema": question_schema(question.verb)},
        }
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await self._write(send, _event(asking))
            watched = await while_connected(receive, lambda: self._wait(question_id, send))
        finally:
            with anyio.CancelScope(shield=True):
                async with session_scope(self.runtime.session_factory, write=True) as db:
                    await relayed_answers.close_question(db, question_id=question_id)
        if watched.gone:
            return True
        outcome = watched.result
        if outcome is not None and outcome.get("action") == "accept":
            mark_confirmed(scope)
            answered = await self._run(scope, receive, body, request_id, forward)
        else:
            answered = _event(self._unaccepted(request_id, tool, outcome))
        await self._write(send, answered)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    def _unaccepted(self, request_id: str | int, tool: str, outcome: dict[str, Any] | None) -> dict[str, Any]:
        if outcome is None:
            timed_out = _tool_error(
                f"confirmation_timeout: the person did not answer the confirmation within {self.timeout:g} "
                f"seconds, so {tool} did nothing; nothing was changed"
            )
            return _result(request_id, timed_out)
        if "invalid" in outcome:
            error = {"code": INVALID_PARAMS, "message": outcome["invalid"], "data": {"code": "invalid_confirmation"}}
            return {"jsonrpc": "2.0", "id": request_id, "error": error}
        if "failed" in outcome:
            failed = _tool_error(
                f"confirmation_failed: the client could not ask the person ({outcome['failed']}), so {tool} did "
                "nothing; nothing was changed"
            )
            return _result(request_id, failed)
        return _result(request_id, declined(tool, str(outcome.get("action"))))

    async def _wait(self, question_id: str, send: Send) -> dict[str, Any] | None:
        """Poll the question's row until it is answered (the answer) or the time is up (``None``), writing
        keep-alive comments in between."""
        deadline = anyio.current_time() + self.timeout
        next_keepalive = anyio.current_time() + self.keepalive_seconds
        while anyio.current_time() < deadline:
            async with session_scope(self.runtime.session_factory) as db:
                answer = await relayed_answers.read_answer(db, question_id=question_id)
            if answer is not None:
                found = json.loads(answer)
                return found if isinstance(found, dict) else None
            if anyio.current_time() >= next_keepalive:
                await self._write(send, SSE_KEEPALIVE)
                next_keepalive = anyio.current_time() + self.keepalive_seconds
            await anyio.sleep(min(self.poll_seconds, max(deadline - anyio.current_time(), 0)))
        return None

    @staticmethod
    async def _write(send: Send, body: bytes) -> None:
        with anyio.fail_after(_SEND_TIMEOUT):
            await send({"type": "http.response.body", "body": body, "more_body": True})

    @staticmethod
    async def _run(scope: Scope, receive: Receive, body: bytes, request_id: str | int, forward: Forward) -> bytes:
        """The accepted call, run by the SDK as any other; its JSON-RPC answer as the stream's last event."""
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await forward(scope, replayed(body, receive), capture)
        answered = b"".join(chunks)
        if status == 200 and answered.startswith(b"{"):
            return _event(answered)
        log.error("MCP confirmed call: the SDK answered %s", status)
        error = {"code": INTERNAL_ERROR, "message": INTERNAL_ERROR_MESSAGE}
        return _event({"jsonrpc": "2.0", "id": request_id, "error": error})

    async def _take_answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        message: Mapping[str, Any],
        principal: Principal,
        session: HandshakeSession | None,
    ) -> None:
        """Record the person's answer for the waiting call, wherever it waits (module docstring)."""
        invalid: str | None = None
        if "error" in message:
            error = message.get("error")
            said = error.get("message") if isinstance(error, Mapping) else None
            outcome: dict[str, Any] = {"failed": str(said)[:200] if said else "it answered with an error"}
        else:
            try:
                outcome = {"action": form_action(message.get("result"), "result")}
            except MCPError as exc:
                invalid = exc.error.message
                outcome = {"invalid": invalid}
        recorded = relayed_answers.Recorded.unknown
        response: Response
        if session is not None:
            async with session_scope(self.runtime.session_factory, write=True) as db:
                recorded = await relayed_answers.record_answer(
                    db,
                    question_id=str(message["id"])[:64],
                    key_id=principal.key_id,
                    session_nonce=session.nonce,
                    answer=json.dumps(outcome),
                )
        if recorded is relayed_answers.Recorded.unknown:
            response = error_response(
                404,
                "not_found",
                "No confirmation of this session waits for this answer (unknown request id, or already closed)",
            )
        elif recorded is relayed_answers.Recorded.already_answered:
            response = error_response(409, "conflict", "This confirmation was already answered")
        elif recorded is relayed_answers.Recorded.expired:
            response = error_response(
                410, "confirmation_expired", f"Too late: the person had {self.timeout:g} seconds to answer"
            )
        elif invalid is not None:
            response = error_response(400, "invalid_confirmation", invalid)
        else:
            response = Response(status_code=202)
        await response(scope, receive, send)
