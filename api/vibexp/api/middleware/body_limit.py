"""Refuse request bodies over a size limit with 413, whether or not the client declared Content-Length.

Before answering, the rest of the body is read and dropped (up to ``drain_bytes`` and ``drain_seconds``): a
server that answers and closes with unread data in its socket makes the kernel send a reset, and clients that
write the whole body before reading (Python's urllib, Node's fetch) then see a broken connection instead of the
413. A client that sent ``Expect: 100-continue`` (curl) has sent nothing yet and gets the 413 at once. Beyond the
drain bounds the connection is closed; that is the price of not reading an unbounded body.
"""

from __future__ import annotations

import anyio
from starlette.types import Receive, Scope, Send

from vibexp.api.errors import error_response

__all__ = ["BodyLimit", "BodyTooLarge"]


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the body crosses the limit after the answer has started: it cannot be a 413."""


class BodyLimit:
    """The limit and its drain bounds; the front door (``vibexp.api.middleware.pipeline``) counts the body's bytes
    as the app reads them (only when the request may carry more than it declared: it has a ``Transfer-Encoding``, or
    a ``Content-Length`` that is not a number; HTTP/1.1 frames any other body by its ``Content-Length``, and a
    request with neither has none) and refuses with :meth:`refuse`."""

    def __init__(self, *, max_bytes: int, drain_bytes: int | None = None, drain_seconds: float = 10.0) -> None:
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(8 * max_bytes, 16 * 1024 * 1024)
        self.drain_seconds = drain_seconds

    async def refuse(self, scope: Scope, receive: Receive, send: Send, *, body_done: bool = False) -> None:
        drained = body_done or await self._drain(scope, receive)
        response = error_response(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes",
            headers=None if drained else {"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _drain(self, scope: Scope, receive: Receive) -> bool:
        """Read and drop the rest of the body; whether it ended within the bounds."""
        if any(name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]):
            return True  # nothing was sent: the client waits for our answer before sending the body
        seen = 0
        with anyio.move_on_after(self.drain_seconds):
            while seen <= self.drain_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
        return False
