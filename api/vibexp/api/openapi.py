"""The OpenAPI document, with the one thing FastAPI cannot declare per route: the rate-limit headers.

Every response that passed key verification carries them (the auth middleware adds them), whatever its status, so
they are documented on each such response of each ``/api/v1`` operation. Responses sent before a key is accepted
(401, 403) or by the outer body-size guard (413) do not carry them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vibexp.api.endpoints import API_PREFIX
from vibexp.api.middleware.auth import PUBLIC_PATHS

__all__ = ["RATE_LIMIT_HEADERS", "install_openapi"]


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": kind}}


RATE_LIMIT_HEADERS: dict[str, dict[str, Any]] = {
    "X-RateLimit-Limit": _header("Requests allowed per UTC hour for this account", "integer"),
    "X-RateLimit-Remaining": _header("Requests left in the current UTC hour", "integer"),
    "X-RateLimit-Reset": _header("Epoch seconds when the window resets (the top of the next UTC hour)", "integer"),
    "X-RateLimit-Used": _header("Requests counted in the current UTC hour", "integer"),
    "RateLimit-Policy": _header('IETF policy, e.g. `"hourly";q=1000;w=3600`'),
    "RateLimit": _header('IETF remaining/reset, e.g. `"hourly";r=998;t=2710`'),
}

_SENT_BEFORE_RATE_LIMITING = {"401", "403", "413"}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with a generator that adds the rate-limit headers (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path, operations in schema.get("paths", {}).items():
                if not path.startswith(API_PREFIX) or path in PUBLIC_PATHS:  # no key: no rate-limit headers
                    continue
                for operation in operations.values():
                    for status, response in operation["responses"].items():
                        if status not in _SENT_BEFORE_RATE_LIMITING:
                            # A new dict: FastAPI shares the router-level response dicts between operations.
                            response["headers"] = {**response.get("headers", {}), **RATE_LIMIT_HEADERS}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
