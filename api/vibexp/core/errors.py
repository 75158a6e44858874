"""Domain errors raised by the core services.

Every adapter maps these once: HTTP status codes live in ``vibexp.api.errors``, MCP errors in the MCP adapter,
retry semantics in the operator. The hierarchy::

    VibeXPError                 base; ``code`` is the stable machine-readable error code
    ├── InvalidApiKey           missing, malformed, unknown, revoked or expired key (``reason`` says which)
    ├── AccountSuspended        the tenant is suspended
    ├── InsufficientScope       the key lacks the scope an operation needs (``scope`` names it)
    ├── IpNotAllowed            the client address is outside the key's ``allowed_cidrs``
    ├── RateLimited             the tenant's hourly window is used up (``limit``, ``reset_at``, ``retry_after``)
    ├── NotFound                no such object for this tenant (also for another tenant's objects)
    ├── AlreadyExists           a unique name is taken
    ├── Conflict                the object's state forbids the change now (``code`` says why)
    ├── PreconditionFailed      an If-Match version does not match the stored one
    ├── InvalidInput            a value the schemas let through but the domain refuses
    └── AuthenticationFailed    wrong e-mail or password for the dashboard
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AccountSuspended",
    "AlreadyExists",
    "AuthFailure",
    "AuthenticationFailed",
    "Conflict",
    "InsufficientScope",
    "InvalidApiKey",
    "InvalidInput",
    "IpNotAllowed",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "VibeXPError",
]


class VibeXPError(Exception):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthFailure(StrEnum):
    """Why a key was refused (``InvalidApiKey.reason``): the one list the token parser and the verifier raise, the
    metrics label (``vibexp_auth_failures``) and the refusals the alert detectors see are read from."""

    missing = "missing"
    wrong_scheme = "wrong_scheme"
    empty = "empty"
    whitespace = "whitespace"
    quoted = "quoted"
    wrong_prefix = "wrong_prefix"
    wrong_length = "wrong_length"
    not_hex = "not_hex"
    unknown = "unknown"
    revoked = "revoked"
    suspended = "suspended"
    expired = "expired"


class InvalidApiKey(VibeXPError):
    code = "invalid_api_key"

    def __init__(
        self,
        message: str,
        *,
        reason: AuthFailure,
        key_id: str | None = None,
        tenant_id: str | None = None,
        typo_prefix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        #: The refused key when it exists (revoked, expired): the ``retired_key_used`` alert needs it.
        self.key_id = key_id
        self.tenant_id = tenant_id
        #: The display prefix of a key refused for its checksum (a typo): the ``failed_auth`` alert counts these.
        self.typo_prefix = typo_prefix


class AccountSuspended(VibeXPError):
    code = "account_suspended"


class InsufficientScope(VibeXPError):
    code = "insufficient_scope"

    def __init__(self, scope: str, message: str | None = None) -> None:
        scope = str(scope)  # a ``Scope`` member reads as its value ('keys:write'), never as its repr
        super().__init__(message or f"This API key lacks the scope {scope!r} this operation needs")
        #: The scope needed, for the RFC 6750 challenge (``WWW-Authenticate: Bearer error=..., scope=...``).
        self.scope = scope


class IpNotAllowed(VibeXPError):
    code = "ip_not_allowed"


class RateLimited(VibeXPError):
    code = "rate_limited"

    def __init__(self, message: str, *, limit: int, reset_at: int, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.reset_at = reset_at
        self.retry_after = retry_after


class NotFound(VibeXPError):
    code = "not_found"


class AlreadyExists(VibeXPError):
    code = "already_exists"


class Conflict(VibeXPError):
    """The change cannot apply to the object as it now is (another change won a race, say); ``code`` names why."""

    code = "conflict"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class PreconditionFailed(VibeXPError):
    code = "precondition_failed"


class InvalidInput(VibeXPError):
    code = "invalid_input"


class AuthenticationFailed(VibeXPError):
    code = "authentication_failed"
