"""Refuse hostile request headers before any other layer reads them (a step of ``vibexp.api.middleware.pipeline``).

* A header line larger than ``max_header_bytes`` (8 KiB by default), or all headers together larger than
  ``max_total_bytes``, gets ``431 Request Header Fields Too Large``. uvicorn's default (httptools) parser puts no cap
  on header size, so without this an arbitrarily large ``Authorization`` or cookie reaches the key parser, the
  session loader and the logs.
* More than one ``Authorization`` header gets ``401 invalid_api_key``: RFC 9110 allows the field once, and
  "the last one wins" (or "the first one wins") would let a proxy and the application disagree about the caller.

The front door measures the headers in its one pass over them and asks :func:`header_refusal` what to answer.
"""

from __future__ import annotations

from starlette.responses import Response

from vibexp.api.errors import error_response

__all__ = ["header_refusal"]


def header_refusal(
    too_large: str | None, total: int, authorizations: int, *, max_header_bytes: int, max_total_bytes: int
) -> Response | None:
    """The refusal for headers measured so (``too_large``: the first header over ``max_header_bytes``; ``total``:
    all their bytes; how many ``Authorization`` headers), or ``None`` when they are acceptable."""
    if too_large is not None or total > max_total_bytes:
        which = f"the {too_large} header is" if too_large else "the request headers are"
        limit = max_header_bytes if too_large else max_total_bytes
        return error_response(
            431,
            "request_header_fields_too_large",
            f"{which} larger than {limit} bytes",
            headers={"Connection": "close"},
        )
    if authorizations > 1:
        return error_response(
            401,
            "invalid_api_key",
            f"Send exactly one Authorization header (this request has {authorizations})",
            headers={"WWW-Authenticate": 'Bearer realm="vibexp", error="invalid_request"'},
        )
    return None
