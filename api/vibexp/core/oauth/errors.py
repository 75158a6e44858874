"""OAuth's own errors: RFC 6749 section 5.2 (token, registration) codes, carried to the adapter, which answers them
as RFC JSON (``{"error", "error_description"}``) or, at the authorization endpoint, a redirect or a page."""

from __future__ import annotations

__all__ = ["InvalidToken", "OAuthError"]


class OAuthError(Exception):
    """``error`` is the RFC code (``invalid_request``, ``invalid_grant``, ``invalid_client``,
    ``unsupported_grant_type``, ``invalid_scope``, ``invalid_redirect_uri``, ``invalid_client_metadata``, ...);
    ``status`` the HTTP status the token and registration endpoints answer with."""

    def __init__(self, error: str, description: str, *, status: int = 400, keep_changes: bool = False) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        #: The refusal revoked something (a reused code or refresh token, a person who left): the unit of work
        #: must commit that revocation, not roll it back with the refusal (the use cases return such errors).
        self.keep_changes = keep_changes


class InvalidToken(Exception):
    """An access token ``/mcp/v1/connect`` refuses (RFC 6750 ``invalid_token``), or none at all (``sent`` false:
    the 401 then names no error, only where to find the authorization server)."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent
