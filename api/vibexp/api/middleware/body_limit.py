"""Refuse request bodies over a size limit with 413, whether or not the client declared Content-Length.

Before answering, the rest of the body is read and dropped (up to ``drain_bytes`` and ``drain_seconds``): a
server that answers and closes with unread data in its socket makes the kernel send a reset, and clients that
write the whole body before reading (Python's urllib, Node's fetch) then see a broken connection instead of the
413. A client that sent ``Expect: 100-continue`` (curl) has sent nothing yet and gets the 413 at once. Beyond the
drain bounds the connection is closed; that is the price of not reading an unbounded body.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.errors import error_response

__all__ = ["BodySizeLimitMiddleware"]


class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_bytes: int, drain_bytes: int | None = None, drain_seconds: float = 10.0
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(8 * max_bytes, 16 * 1024 * 1024)
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        started = refused = False

        async def limited_receive() -> Message:
            # The 413 is sent from here, at the chunk that crosses the limit: raising instead would reach the
            # framework's body parser, which turns any error while reading into a 400. The app then sees the
            # client as gone, and whatever it answers is dropped.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if started:
                        raise _TooLarge
                    refused = True
                    await self._refuse(scope, receive, send, body_done=not message.get("more_body", False))
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not refused:  # after a 413 the app's complaint about the cut-off body is expected
                raise

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, body_done: bool = False) -> None:
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
