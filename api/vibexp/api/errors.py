"""The one place where domain errors become HTTP responses: ``{"error": {"code", "message"}}`` for every 4xx/5xx."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from vibexp.core import errors

__all__ = [
    "ERROR_RESPONSES",
    "UNAVAILABLE_RESPONSE",
    "ErrorBody",
    "error_payload",
    "error_response",
    "install_error_handlers",
    "scope_challenge",
    "status_for",
    "www_authenticate",
]

log = logging.getLogger(__name__)

_STATUS: dict[type[errors.VibeXPError], int] = {
    errors.InvalidApiKey: 401,
    errors.AuthenticationFailed: 401,
    errors.AccountSuspended: 403,
    errors.InsufficientScope: 403,
    errors.IpNotAllowed: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.InvalidInput: 422,
    errors.RateLimited: 429,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def _describe(text: str, **headers: str) -> dict[str, Any]:
    described: dict[str, Any] = {"model": ErrorBody, "description": text}
    if headers:
        described["headers"] = {
            name.replace("_", "-"): {"description": about, "schema": {"type": "string"}}
            for name, about in headers.items()
        }
    return described


#: Documented on every authenticated route (the OpenAPI document describes each error a client can get).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _describe("Malformed request (e.g. invalid JSON)"),
    401: _describe(
        "Missing, malformed, unknown, revoked or expired API key (code invalid_api_key)",
        WWW_Authenticate="Bearer challenge; error_description names the problem",
    ),
    403: _describe(
        "The key lacks the scope needed (code insufficient_scope), the client address is outside the key's "
        "allowed_cidrs (code ip_not_allowed), or the account is suspended (code account_suspended)",
        WWW_Authenticate='For insufficient_scope: Bearer error="insufficient_scope", scope="<the scope needed>"',
    ),
    404: _describe("No such object in this account"),
    413: _describe("Request body too large"),
    422: _describe("Validation failed (code validation_error)"),
    429: _describe(
        "Hourly rate limit exceeded (code rate_limited); see Retry-After",
        Retry_After="Seconds until the next hourly window",
    ),
}

#: Readiness when the database does not answer.
UNAVAILABLE_RESPONSE: dict[int | str, dict[str, Any]] = {503: _describe("The database does not answer")}


def status_for(exc: errors.VibeXPError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def www_authenticate(exc: errors.InvalidApiKey) -> str:
    if exc.reason is errors.AuthFailure.missing:
        return 'Bearer realm="vibexp"'
    message = exc.message.replace('"', "'")
    return f'Bearer realm="vibexp", error="invalid_token", error_description="{message}"'


def scope_challenge(exc: errors.InsufficientScope) -> str:
    """RFC 6750 section 3: the scope the request needed."""
    return f'Bearer realm="vibexp", error="insufficient_scope", scope="{exc.scope}"'


def error_payload(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, details: Any = None
) -> JSONResponse:
    return JSONResponse(error_payload(code, message, details), status_code=status, headers=headers)


def domain_error_response(exc: errors.VibeXPError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.InvalidApiKey):
        headers["WWW-Authenticate"] = www_authenticate(exc)
    if isinstance(exc, errors.InsufficientScope):
        headers["WWW-Authenticate"] = scope_challenge(exc)
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(status_for(exc), exc.code, exc.message, headers=headers or None)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        details.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.VibeXPError)
    async def _domain(_: Request, exc: errors.VibeXPError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "invalid_json", "The request body is not valid JSON", details=details)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return error_response(422, "validation_error", f"{where}: {first['msg']}", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "Internal server error")
