"""Refuse hostile request headers before any other layer reads them.

* A header line larger than ``max_header_bytes`` (8 KiB by default), or all headers together larger than
  ``max_total_bytes``, gets ``431 Request Header Fields Too Large``. uvicorn's default (httptools) parser puts no cap
  on header size, so without this an arbitrarily large ``Authorization`` or cookie reaches the key parser, the
  session loader and the logs.
* More than one ``Authorization`` header gets ``401 invalid_api_key``: RFC 9110 allows the field once, and
  "the last one wins" (or "the first one wins") would let a proxy and the application disagree about the caller.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from vibexp.api.errors import error_response

__all__ = ["HeaderGuardMiddleware"]


class HeaderGuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int = 8192, max_total_bytes: int = 32768) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_total_bytes = max_total_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        total = authorizations = 0
        too_large = None
        for name, value in scope["headers"]:
            size = len(name) + len(value)
            total += size
            if size > self.max_header_bytes and too_large is None:
                too_large = name.decode("latin-1")
            if name == b"authorization":
                authorizations += 1
        if too_large is not None or total > self.max_total_bytes:
            which = f"the {too_large} header is" if too_large else "the request headers are"
            limit = self.max_header_bytes if too_large else self.max_total_bytes
            response = error_response(
                431,
                "request_header_fields_too_large",
                f"{which} larger than {limit} bytes",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        if authorizations > 1:
            response = error_response(
                401,
                "invalid_api_key",
                f"Send exactly one Authorization header (this request has {authorizations})",
                headers={"WWW-Authenticate": 'Bearer realm="vibexp", error="invalid_request"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
